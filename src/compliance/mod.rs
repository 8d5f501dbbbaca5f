//! Compliance: what agents and bots may say, and personal data kept out of sight.
//!
//! - [`PhraseRules`]: forbidden phrases per tenant ([`TenantRules`]), with industry
//!   [`Preset`]s (finance, healthcare, advertising law), matched in one pass through evasions
//!   (spaces, full-width letters, punctuation or emoji between characters). A hit blocks the
//!   message or warns the sender, who may confirm ([`RuleAction`]).
//! - [`find_pii`] / [`mask_pii`]: phone numbers, resident ID numbers (check character
//!   verified), bank cards (Luhn), e-mail and postal addresses; [`MaskingWriter`] masks them in
//!   logs.
//!
//! ```
//! use omnidesk::compliance::{PhraseRules, Preset, mask_pii};
//!
//! let rules = PhraseRules::from_presets([Preset::Finance, Preset::Advertising]);
//! assert!(rules.check("本产品稳 赚 不 赔").is_blocked());
//! assert_eq!(mask_pii("我的电话是13800138000"), "我的电话是138****8000");
//! ```

mod phrases;
mod pii;

pub use phrases::{PhraseHit, PhraseRule, PhraseRules, Preset, RuleAction, TenantRules, Verdict};
pub use pii::{MaskingWriter, PiiKind, PiiMatch, find_pii, mask_pii};
