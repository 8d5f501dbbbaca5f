//! Reply templates in Chinese and English, with `{placeholders}` filled from fetched data.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// (key, Chinese, English)
const DEFAULTS: &[(&str, &str, &str)] = &[
    (
        "ask_order",
        "请提供您的订单号（或下单时的手机号），我马上为您查询。",
        "Please send me your order number (or the phone number on the order) and I'll look it up.",
    ),
    (
        "order_invalid",
        "订单号应为6-24位字母或数字（至少6位数字），手机号为11位。请再发一次订单号。",
        "An order number has 6 to 24 letters or digits (at least 6 digits); a phone number has 11 digits. Could you send the order number again?",
    ),
    (
        "order_not_found",
        "在您名下没有找到这个订单，请核对订单号，或发送下单时使用的手机号。",
        "I couldn't find that order among your orders. Please check the number, or send the phone number you ordered with.",
    ),
    (
        "order_verify",
        "为保护您的隐私，我只能查询与您已验证手机号关联的订单。请发送下单时使用的手机号，我会向该号码发送验证码。",
        "To protect your privacy I can only look up orders linked to a phone number you've verified. Send me the phone number you ordered with and I'll text it a code.",
    ),
    (
        "phone_no_orders",
        "这个手机号下没有找到订单，请提供订单号。",
        "I found no orders for that phone number. Could you send the order number?",
    ),
    (
        "own_no_orders",
        "您已验证的手机号下没有找到订单。如果用其他手机号下单，请发送该号码，我会向它发送验证码。",
        "I found no orders for your verified phone number. If you ordered with another number, send it and I'll text it a code.",
    ),
    (
        "code_sent",
        "为保护您的隐私，已向 {phone} 发送6位验证码（{minutes}分钟内有效），请在这里回复验证码。",
        "To protect your privacy I've texted a 6-digit code to {phone} (valid for {minutes} minutes). Please reply here with the code.",
    ),
    (
        "code_sms",
        "您的验证码是 {code}，{minutes}分钟内有效，用于在客服对话中查询订单。请勿告诉他人。",
        "Your verification code is {code}. It expires in {minutes} minutes and lets you see your orders in our chat. Never share it.",
    ),
    (
        "phone_verified",
        "验证成功，手机号 {phone} 已确认。",
        "Thanks, {phone} is verified.",
    ),
    (
        "code_wrong",
        "验证码不正确，您还可以再试{attempts}次。",
        "That code isn't right. You have {attempts} more tries.",
    ),
    (
        "code_locked",
        "验证码错误次数过多，已失效。如需重新验证，请再次发送手机号；也可以回复“转人工”。",
        "Too many wrong codes, so that one no longer works. Send the phone number again for a new code, or type \"agent\" to reach a person.",
    ),
    (
        "code_expired",
        "验证码已过期，请再次发送手机号获取新的验证码。",
        "That code has expired. Send the phone number again and I'll text you a new one.",
    ),
    (
        "code_limit",
        "验证码发送次数已达上限，请稍后再试，或回复“转人工”。",
        "I've sent as many codes as I can for now. Please try again later, or type \"agent\" to reach a person.",
    ),
    (
        "choose_order",
        "这个手机号下有以下订单，请回复序号或订单号：\n{orders}",
        "I found these orders for your phone number. Reply with the line number or the order number:\n{orders}",
    ),
    (
        "order_status",
        "订单 {order_id}（{items}，{total}）当前状态：{status}。",
        "Order {order_id} ({items}, {total}) is {status}.",
    ),
    (
        "logistics",
        "订单 {order_id} 由 {carrier} 配送，物流轨迹：\n{timeline}",
        "Order {order_id} ships with {carrier}. Tracking:\n{timeline}",
    ),
    (
        "logistics_empty",
        "订单 {order_id} 当前状态：{status}，暂时还没有物流信息，发货后会第一时间通知您。",
        "Order {order_id} is {status} and has no tracking yet; we'll notify you as soon as it ships.",
    ),
    (
        "return_started",
        "已为订单 {order_id} 提交售后申请，服务单号 {return_id}。我们会在24小时内审核并通知您。",
        "I've started a return for order {order_id}; your return number is {return_id}. We'll review it within 24 hours and let you know.",
    ),
    (
        "return_refused",
        "订单 {order_id} 当前状态为{status}，暂时无法在线申请售后。需要的话可以回复“转人工”。",
        "Order {order_id} is {status}, so I can't start a return online. Reply \"agent\" if you'd like a colleague to help.",
    ),
    (
        "ask_ticket",
        "请提供您的工单号。",
        "Please send me your ticket number.",
    ),
    (
        "ticket_invalid",
        "工单号是一串数字，例如 1024。请再发一次。",
        "A ticket number is a number such as 1024. Could you send it again?",
    ),
    (
        "ticket_not_found",
        "没有找到这个工单，请核对工单号。",
        "I couldn't find that ticket. Please check the number.",
    ),
    (
        "ticket_status",
        "工单 #{ticket}（{subject}）当前状态：{status}，最后更新 {updated}。",
        "Ticket #{ticket} ({subject}) is {status}, last updated {updated}.",
    ),
    (
        "clarify",
        "请问您想咨询的是以下哪个问题？回复序号即可：\n{options}",
        "Which of these do you mean? Reply with the number:\n{options}",
    ),
    (
        "empathy",
        "很抱歉给您带来不好的体验，我来帮您看看。",
        "I'm sorry you're having trouble. Let me help you sort it out.",
    ),
    (
        "rephrase",
        "抱歉，我没有理解您的问题，可以换个说法吗？输入“转人工”可联系人工客服。",
        "Sorry, I didn't get that. Could you rephrase? Type \"agent\" to reach a person.",
    ),
    (
        "out_of_scope",
        "抱歉，这个问题我还不会回答。我可以帮您解答：\n{menu}\n您也可以换个说法，或回复“转人工”联系人工客服。",
        "Sorry, I don't know the answer to that. I can help with:\n{menu}\nYou can rephrase, or type \"agent\" to reach a person.",
    ),
    (
        "handoff_request",
        "好的，正在为您转接人工客服，您之前提供的信息已同步给客服，无需重复。",
        "Sure, I'm connecting you to an agent. They'll see everything you've told me, so you won't need to repeat it.",
    ),
    (
        "handoff_complaint",
        "非常抱歉给您带来不好的体验，已为您优先转接专员处理。",
        "I'm very sorry about this. I'm passing you to a specialist with priority.",
    ),
    (
        "handoff_upset",
        "非常抱歉让您不愉快，马上为您转接人工客服，请稍候。",
        "I'm sorry for the trouble. I'm getting a person to help you right away.",
    ),
    (
        "handoff_failure",
        "抱歉，这个问题我处理不了，正在为您转接人工客服，您无需重复描述。",
        "Sorry, I can't handle this one. I'm connecting you to an agent, who will see our conversation.",
    ),
];

/// Reply templates keyed by name, one text per language. Keys and placeholders:
/// `ask_order`, `order_invalid`, `order_not_found` (missing or another customer's: the same
/// words), `order_verify` (the same, to a customer who proved no phone yet), `phone_no_orders`,
/// `own_no_orders`, `code_sent` (`{phone}` masked, `{minutes}`), `code_sms` (the SMS: `{code}`,
/// `{minutes}`), `phone_verified` (`{phone}`), `code_wrong` (`{attempts}` left), `code_locked`,
/// `code_expired`, `code_limit`, `choose_order` (`{orders}`), `order_status`, `logistics_empty` (`{order_id}`, `{status}`, `{items}`,
/// `{total}`), `logistics` (those and `{carrier}`, `{timeline}`), `return_started` (and
/// `{return_id}`), `return_refused`, `ask_ticket`, `ticket_invalid`, `ticket_not_found`,
/// `ticket_status` (`{ticket}`, `{subject}`, `{status}`, `{updated}`), `clarify` (`{options}`),
/// `empathy` (the first line of the first answer to an unhappy customer), `rephrase`, `out_of_scope` (`{menu}`: the topics the bot can help with), `handoff_request`, `handoff_complaint`, `handoff_upset`, `handoff_failure`.
#[derive(Debug, Clone)]
pub struct Templates {
    map: HashMap<(&'static str, bool), String>,
}

impl Default for Templates {
    fn default() -> Self {
        let mut map = HashMap::new();
        for (k, zh, en) in DEFAULTS {
            map.insert((*k, true), (*zh).to_owned());
            map.insert((*k, false), (*en).to_owned());
        }
        Self { map }
    }
}

impl Templates {
    /// Replaces the text of `key` for Chinese (`zh`) or English.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an unknown key.
    pub fn set(&mut self, key: &str, zh: bool, text: String) -> Result<()> {
        let Some((k, _, _)) = DEFAULTS.iter().find(|(k, _, _)| *k == key) else {
            return Err(Error::InvalidInput {
                reason: format!("unknown template {key:?}"),
            });
        };
        self.map.insert((k, zh), text);
        Ok(())
    }

    /// Renders `key` with `{name}` placeholders replaced by `vars`.
    pub fn render(&self, key: &str, zh: bool, vars: &[(&str, &str)]) -> String {
        let Some(t) = self.map.get(&(key, zh)) else {
            return key.to_owned();
        };
        let mut out = String::with_capacity(t.len() + 64);
        let mut rest = t.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after.find('}') {
                Some(close) => {
                    let name = &after[..close];
                    match vars.iter().find(|(k, _)| *k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => {
                            out.push('{');
                            out.push_str(name);
                            out.push('}');
                        }
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str(&rest[open..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_overrides() {
        let mut t = Templates::default();
        assert_eq!(
            t.render(
                "order_status",
                false,
                &[
                    ("order_id", "1"),
                    ("items", "shoes"),
                    ("total", "9.90 CNY"),
                    ("status", "shipped")
                ]
            ),
            "Order 1 (shoes, 9.90 CNY) is shipped."
        );
        t.set("ask_ticket", true, "工单号？{x}".into()).unwrap();
        assert_eq!(t.render("ask_ticket", true, &[]), "工单号？{x}");
        assert!(t.set("nope", true, String::new()).is_err());
    }
}
