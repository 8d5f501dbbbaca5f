//! Text features shared by the bots: tokens for Chinese and English.

/// Whether `c` is a CJK ideograph (or a CJK symbol such as a full-width punctuation mark).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// Whether the text is mostly Chinese.
pub fn is_chinese(text: &str) -> bool {
    let cjk = text.chars().filter(|c| is_cjk(*c)).count();
    let latin = text.chars().filter(|c| c.is_ascii_alphabetic()).count();
    cjk > 0 && cjk * 2 >= latin / 3
}

/// Lower-cased tokens: English words (with a crude plural/suffix strip), and Chinese characters
/// as single characters and overlapping pairs (bigrams), which match without a dictionary.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut prev_cjk: Option<char> = None;
    let flush = |word: &mut String, out: &mut Vec<String>| {
        if !word.is_empty() {
            out.push(stem(word));
            word.clear();
        }
    };
    for c in text.chars() {
        if is_cjk(c) {
            flush(&mut word, &mut out);
            out.push(c.to_string());
            if let Some(p) = prev_cjk {
                out.push(format!("{p}{c}"));
            }
            prev_cjk = Some(c);
        } else if c.is_alphanumeric() {
            prev_cjk = None;
            word.extend(c.to_lowercase());
        } else {
            prev_cjk = None;
            flush(&mut word, &mut out);
        }
    }
    flush(&mut word, &mut out);
    out.retain(|t| !STOP_WORDS.contains(&t.as_str()));
    out
}

fn stem(word: &str) -> String {
    for suffix in ["ing", "ed", "es", "s"] {
        if word.len() > suffix.len() + 2 && word.ends_with(suffix) {
            return word[..word.len() - suffix.len()].to_owned();
        }
    }
    word.to_owned()
}

const STOP_WORDS: &[&str] = &[
    "a", "an", "the", "i", "my", "me", "to", "is", "it", "do", "can", "you", "of", "for", "and",
    "or", "in", "on", "be", "are", "what", "how", "please", "pls", "this", "that", "your", "with",
    "的", "了", "吗", "呢", "吧", "啊", "我", "你", "是", "在", "请", "问",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_cover_both_languages() {
        assert_eq!(tokens("How do I return items?"), ["return", "item"]);
        assert_eq!(
            tokens("怎么退货"),
            ["怎", "么", "怎么", "退", "么退", "货", "退货"]
        );
        assert!(is_chinese("我要退货 please"));
        assert!(!is_chinese("where is my order"));
    }
}
