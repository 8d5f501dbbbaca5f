//! The order tools the LLM bot offers its model. Every call runs as the asking customer, behind
//! [`OwnOrders`] and the one-time codes, so whatever the model is told or tricked into asking,
//! it only ever sees the customer's own orders: the same rules as the intent bot.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::shop::{Asker, Order, OrderService, ReturnKind, ReturnRequest, phone_key};
use crate::templates::Templates;
use crate::verify::{CodeCheck, PhoneCode, PhoneCodes, mask_phone};

/// What one bot turn's tool calls did besides answering the model.
#[derive(Debug)]
pub(crate) struct ToolTurn {
    /// Who asks (gains a phone when a code is confirmed in this turn).
    pub(crate) asker: Asker,
    /// The customer writes Chinese.
    pub(crate) zh: bool,
    /// A code to text (the engine sends it).
    pub(crate) phone_code: Option<PhoneCode>,
    /// Phones proved in this turn.
    pub(crate) verified: Vec<String>,
}

/// The tools and what they run on.
#[derive(Debug, Clone)]
pub(crate) struct OrderTools {
    pub(crate) orders: Arc<dyn OrderService>,
    pub(crate) codes: Arc<PhoneCodes>,
    pub(crate) templates: Templates,
}

/// What the model is told about the tools, in the system prompt.
pub(crate) const TOOL_RULES: &str = "Use the tools for anything about the customer's orders, \
     tracking or returns. The tools only return the customer's own orders: when a tool says \
     not_found, tell the customer you could not find that order among their orders, and never \
     guess or confirm whether it exists. To look orders up by a phone number the customer has \
     not verified, call send_phone_code, ask the customer for the 6-digit code it texted, then \
     call check_phone_code with it.";

#[derive(Deserialize)]
struct LookupArgs {
    #[serde(default)]
    order_id: Option<String>,
    #[serde(default)]
    phone: Option<String>,
}

#[derive(Deserialize)]
struct PhoneArgs {
    phone: String,
}

#[derive(Deserialize)]
struct CodeArgs {
    code: String,
}

#[derive(Deserialize)]
struct ReturnArgs {
    order_id: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

fn not_found() -> Value {
    json!({
        "result": "not_found",
        "note": "No such order among the customer's orders. Do not say whether it exists. If \
                 the customer has not verified a phone, ask for the phone number on the order \
                 and call send_phone_code."
    })
}

fn order_json(o: &Order, zh: bool) -> Value {
    json!({
        "order_id": o.id,
        "status": o.status.label(zh),
        "items": o.items,
        "total": format!("{}.{:02} {}", o.total_minor / 100, o.total_minor % 100, o.currency),
        "placed_at": o.placed_at.to_rfc3339(),
        "carrier": o.carrier,
        "tracking_number": o.tracking_number,
    })
}

impl OrderTools {
    /// The tools in the chat-completions `tools` format.
    pub(crate) fn definitions() -> Value {
        let function = |name: &str, description: &str, parameters: Value| {
            json!({"type": "function", "function": {
                "name": name, "description": description, "parameters": parameters
            }})
        };
        json!([
            function(
                "lookup_orders",
                "The customer's orders: one by its order number (with tracking), those placed \
                 with a phone number the customer verified, or, with no argument, all orders \
                 of the customer's verified phones.",
                json!({"type": "object", "properties": {
                    "order_id": {"type": "string", "description": "The order number"},
                    "phone": {"type": "string", "description": "A phone number the orders were placed with"}
                }})
            ),
            function(
                "send_phone_code",
                "Texts a 6-digit one-time code to a phone number, so the customer can prove it \
                 is theirs.",
                json!({"type": "object", "properties": {
                    "phone": {"type": "string"}
                }, "required": ["phone"]})
            ),
            function(
                "check_phone_code",
                "Checks the 6-digit code the customer received; a right code verifies the phone.",
                json!({"type": "object", "properties": {
                    "code": {"type": "string"}
                }, "required": ["code"]})
            ),
            function(
                "start_return",
                "Starts a return (goods sent back) or a refund on one of the customer's orders.",
                json!({"type": "object", "properties": {
                    "order_id": {"type": "string"},
                    "kind": {"type": "string", "enum": ["return", "refund"]},
                    "reason": {"type": "string"}
                }, "required": ["order_id"]})
            ),
        ])
    }

    /// Runs one tool call as the turn's customer. Bad arguments and refusals are answers for
    /// the model; only an unreachable back end is an error.
    ///
    /// # Errors
    /// [`Error::Unavailable`] from the order service.
    pub(crate) async fn call(
        &self,
        turn: &mut ToolTurn,
        name: &str,
        arguments: &str,
    ) -> Result<Value> {
        let bad = |e: serde_json::Error| json!({"result": "bad_arguments", "error": e.to_string()});
        match name {
            "lookup_orders" => match serde_json::from_str::<LookupArgs>(arguments) {
                Ok(a) => self.lookup(turn, a).await,
                Err(e) => Ok(bad(e)),
            },
            "send_phone_code" => Ok(match serde_json::from_str::<PhoneArgs>(arguments) {
                Ok(a) => self.send_code(turn, &a.phone),
                Err(e) => bad(e),
            }),
            "check_phone_code" => Ok(match serde_json::from_str::<CodeArgs>(arguments) {
                Ok(a) => self.check_code(turn, &a.code),
                Err(e) => bad(e),
            }),
            "start_return" => match serde_json::from_str::<ReturnArgs>(arguments) {
                Ok(a) => self.start_return(turn, a).await,
                Err(e) => Ok(bad(e)),
            },
            other => Ok(json!({"result": "unknown_tool", "tool": other})),
        }
    }

    async fn lookup(&self, turn: &ToolTurn, a: LookupArgs) -> Result<Value> {
        let asker = &turn.asker;
        if let Some(id) = a.order_id.as_deref().map(str::trim) {
            let Some(order) = self.orders.order(asker, id).await? else {
                return Ok(not_found());
            };
            let tracking: Vec<Value> = self
                .orders
                .logistics(asker, &order.id)
                .await?
                .iter()
                .map(|e| json!({"at": e.at.to_rfc3339(), "location": e.location, "description": e.description}))
                .collect();
            let mut v = order_json(&order, turn.zh);
            v["tracking"] = Value::Array(tracking);
            return Ok(json!({"result": "found", "order": v}));
        }
        let phones: Vec<String> = match a.phone {
            Some(p) if !asker.has_phone(&p) => {
                return Ok(json!({
                    "result": "phone_not_verified",
                    "note": "Call send_phone_code for this number first."
                }));
            }
            Some(p) => vec![p],
            None if asker.verified_phones.is_empty() => {
                return Ok(json!({
                    "result": "no_verified_phone",
                    "note": "Ask for the order number or the phone number on the order."
                }));
            }
            None => asker.verified_phones.clone(),
        };
        let mut found: Vec<Order> = Vec::new();
        for p in &phones {
            for o in self.orders.orders_by_phone(asker, p).await? {
                if !found.iter().any(|f| f.id == o.id) {
                    found.push(o);
                }
            }
        }
        found.sort_by_key(|o| std::cmp::Reverse(o.placed_at));
        found.truncate(10);
        let orders: Vec<Value> = found.iter().map(|o| order_json(o, turn.zh)).collect();
        Ok(json!({"result": "found", "orders": orders}))
    }

    fn send_code(&self, turn: &mut ToolTurn, phone: &str) -> Value {
        let phone = phone.trim();
        if phone_key(phone).is_none_or(|k| !(8..=15).contains(&k.len())) {
            return json!({"result": "invalid_phone"});
        }
        if turn.asker.has_phone(phone) {
            return json!({"result": "already_verified"});
        }
        let customer = turn.asker.customer;
        let Some(code) = self.codes.issue(&turn.asker.tenant, customer, phone) else {
            return json!({"result": "limit_reached", "note": "Ask the customer to try later."});
        };
        let minutes = self.codes.policy().ttl.num_minutes().max(1).to_string();
        turn.phone_code = Some(PhoneCode {
            phone: phone.to_owned(),
            text: self.templates.render(
                "code_sms",
                turn.zh,
                &[("code", code.as_str()), ("minutes", minutes.as_str())],
            ),
        });
        json!({"result": "code_sent", "to": mask_phone(phone), "expires_in_minutes": minutes})
    }

    fn check_code(&self, turn: &mut ToolTurn, code: &str) -> Value {
        let customer = turn.asker.customer;
        match self.codes.check(&turn.asker.tenant, customer, code) {
            CodeCheck::Verified { phone } => {
                turn.asker = turn.asker.clone().with_verified_phone(phone.clone());
                turn.verified.push(phone.clone());
                json!({"result": "verified", "phone": mask_phone(&phone)})
            }
            CodeCheck::Wrong { attempts_left } => {
                json!({"result": "wrong_code", "attempts_left": attempts_left})
            }
            CodeCheck::TooManyAttempts => json!({"result": "too_many_attempts"}),
            CodeCheck::Expired => json!({"result": "expired"}),
            CodeCheck::NoCode => json!({"result": "no_code_sent"}),
        }
    }

    async fn start_return(&self, turn: &ToolTurn, a: ReturnArgs) -> Result<Value> {
        let kind = match a.kind.as_deref() {
            Some("refund") => ReturnKind::Refund,
            _ => ReturnKind::Return,
        };
        let request = ReturnRequest {
            order_id: a.order_id.trim().to_owned(),
            kind,
            reason: a.reason.unwrap_or_default(),
        };
        match self.orders.start_return(&turn.asker, &request).await {
            Ok(r) => Ok(json!({"result": "started", "return_id": r.id, "order_id": r.order_id})),
            Err(Error::NotFound { .. }) => Ok(not_found()),
            Err(Error::InvalidInput { .. }) => Ok(json!({
                "result": "cannot_return",
                "note": "The order cannot be returned online; offer a human agent."
            })),
            Err(e) => Err(e),
        }
    }
}
