//! Slot values found in customer messages, with validation: order numbers, phone numbers and
//! ticket numbers.

use std::collections::BTreeMap;

/// Values found in one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) order_id: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) ticket: Option<u64>,
}

/// Slots collected over a conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Slots(BTreeMap<String, String>);

impl Slots {
    pub(crate) fn merge(&mut self, found: &Found) {
        if let Some(o) = &found.order_id {
            self.set("order_id", o);
        }
        if let Some(p) = &found.phone {
            self.set("phone", p);
        }
        if let Some(t) = found.ticket {
            self.set("ticket", &t.to_string());
        }
    }
    pub(crate) fn set(&mut self, key: &str, value: &str) {
        self.0.insert(key.to_owned(), value.to_owned());
    }
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    pub(crate) fn remove(&mut self, key: &str) {
        self.0.remove(key);
    }
    pub(crate) fn to_map(&self) -> BTreeMap<String, String> {
        self.0.clone()
    }
}

/// Whether `s` (digits only) is a valid mobile number: Chinese (`1[3-9]` + 9 digits) or an
/// international number written with `+` (8 to 15 digits).
pub(crate) fn valid_phone(digits: &str, plus: bool) -> Option<String> {
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let cn =
        |d: &str| d.len() == 11 && d.starts_with('1') && matches!(d.as_bytes()[1], b'3'..=b'9');
    if cn(digits) {
        return Some(digits.to_owned());
    }
    if let Some(rest) = digits.strip_prefix("86")
        && cn(rest)
    {
        return Some(rest.to_owned());
    }
    (plus && (8..=15).contains(&digits.len())).then(|| format!("+{digits}"))
}

/// Whether `s` looks like an order number: 6 to 24 letters, digits or dashes, at least 6 digits.
pub(crate) fn valid_order_id(s: &str) -> bool {
    (6..=24).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && s.bytes().filter(u8::is_ascii_digit).count() >= 6
}

const TICKET_WORDS: &[&str] = &["ticket", "case", "工单", "单号#", "#"];

/// Finds slot values in a message.
pub(crate) fn extract(text: &str) -> Found {
    // Fold full-width digits and letters.
    let folded: String = text
        .chars()
        .map(|c| match c as u32 {
            0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect();
    let mut found = Found::default();
    let mut start = None;
    let chars: Vec<(usize, char)> = folded.char_indices().collect();
    for k in 0..=chars.len() {
        let in_run = chars
            .get(k)
            .is_some_and(|(_, c)| c.is_ascii_alphanumeric() || *c == '-');
        match (in_run, start) {
            (true, None) => start = Some(k),
            (false, Some(st)) => {
                start = None;
                let from = chars[st].0;
                let to = chars.get(k).map_or(folded.len(), |(i, _)| *i);
                let token = folded[from..to].trim_matches('-');
                let before: String = folded[..from]
                    .chars()
                    .rev()
                    .take(8)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                let before = before.to_lowercase();
                let plus = before.ends_with('+');
                let digits: String = token.chars().filter(char::is_ascii_digit).collect();
                let all_digits = digits.len() == token.replace('-', "").len();
                if all_digits
                    && found.phone.is_none()
                    && let Some(p) = valid_phone(&digits, plus)
                {
                    found.phone = Some(p);
                    continue;
                }
                if all_digits
                    && (1..=10).contains(&digits.len())
                    && TICKET_WORDS.iter().any(|w| before.trim_end().ends_with(w))
                    && found.ticket.is_none()
                {
                    found.ticket = digits.parse().ok();
                    continue;
                }
                if valid_order_id(token) && found.order_id.is_none() {
                    found.order_id = Some(token.to_uppercase());
                }
            }
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_validates_slots() {
        let f = extract("我的订单号是２０２６１１１１００１，手机13800138000");
        assert_eq!(f.order_id.as_deref(), Some("20261111001"));
        assert_eq!(f.phone.as_deref(), Some("13800138000"));
        let f = extract("order #A-20261111 please, call +44 7700900123? no: +447700900123");
        assert_eq!(f.order_id.as_deref(), Some("A-20261111"));
        assert_eq!(f.phone.as_deref(), Some("+447700900123"));
        assert_eq!(extract("what about ticket 1024").ticket, Some(1024));
        assert_eq!(extract("工单1024怎么样了").ticket, Some(1024));
        assert_eq!(
            extract("order 12345"),
            Found::default(),
            "too short for an order"
        );
        assert_eq!(extract("12345678901").phone, None, "not a mobile number");
        assert_eq!(
            extract("+8613800138000").phone.as_deref(),
            Some("13800138000")
        );
    }
}
