//! Sentiment measured on the labelled sample shipped in `data/sentiment_sample.jsonl`.

use cs_bot::{Emotion, Polarity, sentiment};
use cs_core::Priority;

#[test]
fn sentiment_is_accurate_on_the_bilingual_sample() {
    let text = include_str!("../data/sentiment_sample.jsonl");
    let mut per_lang: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    let mut wrong = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let (t, label, lang) = (
            v["text"].as_str().unwrap(),
            v["label"].as_str().unwrap(),
            v["lang"].as_str().unwrap(),
        );
        let got = sentiment(t).polarity.as_str();
        let e = per_lang.entry(lang.to_owned()).or_default();
        e.1 += 1;
        if got == label {
            e.0 += 1;
        } else {
            wrong.push(format!("{t} -> {got} (want {label})"));
        }
    }
    for (lang, (ok, n)) in &per_lang {
        let acc = *ok as f64 / *n as f64;
        println!("sentiment accuracy {lang}: {acc:.3} ({ok}/{n})");
        assert!(n >= &30, "{lang} sample too small");
        assert!(acc >= 0.85, "{lang}: {acc:.3}; wrong: {wrong:#?}");
    }
}

#[test]
fn negation_intensifiers_and_priority() {
    assert_eq!(sentiment("good").polarity, Polarity::Positive);
    assert_eq!(sentiment("not good").polarity, Polarity::Negative);
    assert_eq!(sentiment("not bad").polarity, Polarity::Positive);
    assert!(sentiment("very bad").score < sentiment("bad").score);
    assert!(sentiment("非常失望").score < sentiment("失望").score);
    assert_eq!(sentiment("不满意").polarity, Polarity::Negative);
    assert_eq!(sentiment("没有问题，很满意").polarity, Polarity::Positive);
    let angry = sentiment("This is a SCAM, I am furious!!!");
    assert_eq!(angry.emotion, Emotion::Anger);
    assert_eq!(angry.priority(), Priority::Urgent);
    assert!(angry.is_upset());
    assert_eq!(sentiment("急用，能快点发货吗").emotion, Emotion::Anxiety);
    assert_eq!(sentiment("where is my order").priority(), Priority::Normal);
}
