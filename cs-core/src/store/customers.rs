//! Customers and their identities: resolution (with shared keys), links, suggestions, merges.

use std::fmt::Debug;
use std::future::Future;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::channel::{Identity, IdentityLink, LinkOrigin, SharedKey};
use crate::customer::{Customer, CustomerTier};
use crate::error::Result;
use crate::id::{ConversationId, CustomerId, MergeId, TenantId};

/// Find the customer who owns an identity, or create one.
///
/// ```
/// use cs_core::store::ResolveCustomer;
/// use cs_core::{ChannelKind, Identity, SharedKey, TenantId};
///
/// let number = "+8613800138000";
/// let req = ResolveCustomer::new(TenantId::default(), Identity::new(ChannelKind::Sms, number), chrono::Utc::now())
///     .with_language("zh-CN")
///     // An SMS sender can be spoofed: it claims the number, it does not prove it.
///     .with_shared_key(SharedKey::phone(number, false).unwrap());
/// assert_eq!(req.shared_key.unwrap().key, "phone:+8613800138000");
/// ```
#[derive(Debug, Clone)]
pub struct ResolveCustomer {
    /// The tenant.
    pub tenant: TenantId,
    /// The identity the message came from.
    pub identity: Identity,
    /// A display name, used only when a customer is created.
    pub display_name: Option<String>,
    /// A language, used only when a customer is created.
    pub language: Option<String>,
    /// A key the identity shares with identities on other channels (its phone number), and
    /// whether it proves it. A new identity joins the customer of another identity with the same
    /// key only when both prove it; otherwise a new customer is created and the others are
    /// returned as [`Resolved::suggestions`]. The key is recorded with the identity.
    pub shared_key: Option<SharedKey>,
    /// When (by the engine's clock).
    pub at: DateTime<Utc>,
}

impl ResolveCustomer {
    /// Resolves `identity` in `tenant`, with no profile and no shared key.
    pub fn new(tenant: TenantId, identity: Identity, at: DateTime<Utc>) -> Self {
        Self {
            tenant,
            identity,
            display_name: None,
            language: None,
            shared_key: None,
            at,
        }
    }

    /// The display name of a new customer.
    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// The language of a new customer.
    pub fn with_language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    /// The key the identity shares with others, and whether it proves it.
    pub fn with_shared_key(mut self, key: SharedKey) -> Self {
        self.shared_key = Some(key);
        self
    }
}

/// The outcome of [`CustomerStore::resolve_customer`].
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The customer who owns the identity.
    pub customer: Customer,
    /// Whether the customer was created by this call.
    pub created: bool,
    /// Whether the identity was new and joined `customer` because both prove a shared key (its
    /// link has origin [`LinkOrigin::SharedKey`]).
    pub joined: bool,
    /// When the identity was new: the other customers with an identity sharing its key that
    /// could not be joined automatically (one side only claims the key), one per customer, oldest
    /// first, for an agent to confirm with a merge or the engine with a one-time code. Empty for
    /// a known identity; see [`CustomerStore::link_suggestions`] for the current list.
    pub suggestions: Vec<LinkSuggestion>,
}

impl Resolved {
    /// A known identity's customer.
    pub fn found(customer: Customer) -> Self {
        Self {
            customer,
            created: false,
            joined: false,
            suggestions: Vec::new(),
        }
    }
}

/// Another customer that may be the same person: an identity of theirs shares a key with an
/// identity of this customer, and the two were not joined because at least one side does not
/// prove the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSuggestion {
    /// The key both identities carry.
    pub key: String,
    /// The customer the suggestion is for.
    pub customer: CustomerId,
    /// Their identity that carries the key.
    pub identity: Identity,
    /// Whether `identity` proves the key.
    pub proven: bool,
    /// The customer who may be the same person.
    pub candidate: CustomerId,
    /// The candidate's identity that carries the key.
    pub candidate_identity: Identity,
    /// Whether the candidate's identity proves the key: then a one-time code sent through it can
    /// confirm the suggestion.
    pub candidate_proven: bool,
}

/// Link another identity to a customer.
#[derive(Debug, Clone)]
pub struct LinkIdentity {
    /// The tenant.
    pub tenant: TenantId,
    /// Whose identity it becomes.
    pub customer: CustomerId,
    /// The identity.
    pub identity: Identity,
    /// Why.
    pub origin: LinkOrigin,
    /// The key the identity shares with others, if known.
    pub shared_key: Option<SharedKey>,
    /// When.
    pub at: DateTime<Utc>,
}

impl LinkIdentity {
    /// Links `identity` to `customer` for `origin`.
    pub fn new(
        tenant: TenantId,
        customer: CustomerId,
        identity: Identity,
        origin: LinkOrigin,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            tenant,
            customer,
            identity,
            origin,
            shared_key: None,
            at,
        }
    }

    /// Records the key the identity shares with others.
    pub fn with_shared_key(mut self, key: SharedKey) -> Self {
        self.shared_key = Some(key);
        self
    }
}

/// Merge one customer into another.
#[derive(Debug, Clone)]
pub struct MergeCustomers {
    /// The tenant.
    pub tenant: TenantId,
    /// The customer who stays.
    pub into: CustomerId,
    /// The customer merged away.
    pub from: CustomerId,
    /// Who or what decided it.
    pub by: LinkOrigin,
    /// When.
    pub at: DateTime<Utc>,
}

/// Undo a merge.
#[derive(Debug, Clone)]
pub struct Unmerge {
    /// The tenant.
    pub tenant: TenantId,
    /// The merge.
    pub merge: MergeId,
    /// When.
    pub at: DateTime<Utc>,
}

/// A recorded merge.
#[derive(Debug, Clone, PartialEq)]
pub struct Merge {
    /// The id.
    pub id: MergeId,
    /// The tenant.
    pub tenant: TenantId,
    /// The customer who stayed.
    pub into: CustomerId,
    /// The customer merged away.
    pub from: CustomerId,
    /// The identities that moved, with the origins they had before.
    pub identities: Vec<IdentityLink>,
    /// The conversations that moved.
    pub conversations: Vec<ConversationId>,
    /// `from`'s active conversation, resolved by the merge because `into` had one too.
    pub resolved: Option<ConversationId>,
    /// Who or what decided it.
    pub by: LinkOrigin,
    /// When.
    pub at: DateTime<Utc>,
    /// When it was undone.
    pub undone_at: Option<DateTime<Utc>>,
}

/// Customers and their channel identities: who is writing, across channels.
#[async_trait]
pub trait CustomerStore: Send + Sync + Debug + 'static {
    /// Returns the customer who owns `req.identity`. A new identity joins the customer of another
    /// identity with the same [`ResolveCustomer::shared_key`] when both prove the key (recorded
    /// as [`LinkOrigin::SharedKey`]); otherwise a customer is created (the identity linked as
    /// [`LinkOrigin::FirstContact`]) and the customers it may belong to are returned as
    /// [`Resolved::suggestions`]. One atomic step: concurrent calls for the same identity agree
    /// on one customer.
    ///
    /// # Errors
    /// [`crate::Error::Backend`] or [`crate::Error::Unavailable`] when the backend fails.
    async fn resolve_customer(&self, req: &ResolveCustomer) -> Result<Resolved>;

    /// The customer who owns `identity`, if any (never creates one).
    ///
    /// # Errors
    /// Backend failures.
    async fn find_customer(
        &self,
        tenant: &TenantId,
        identity: &Identity,
    ) -> Result<Option<Customer>>;

    /// Loads a customer.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] when there is no such customer in the tenant.
    async fn customer(&self, tenant: &TenantId, id: CustomerId) -> Result<Customer>;

    /// Saves a customer's profile (name, tier, language).
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] when there is no such customer.
    async fn update_customer(&self, customer: &Customer) -> Result<()>;

    /// Links another identity to a customer, recording why. Linking an identity the customer
    /// already has keeps the first origin, confirms the link ([`IdentityLink::verified`]) and
    /// records the shared key when one is given.
    ///
    /// # Errors
    /// [`crate::Error::Conflict`] when the identity belongs to another customer (merge the
    /// customers instead); [`crate::Error::NotFound`] when the customer does not exist.
    async fn link_identity(&self, req: &LinkIdentity) -> Result<()>;

    /// Every identity of a customer with the origin of its link, by identity.
    ///
    /// # Errors
    /// Backend failures.
    async fn identity_links(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
    ) -> Result<Vec<IdentityLink>>;

    /// The other customers who share a key with one of this customer's identities (see
    /// [`LinkSuggestion`]), one per customer, oldest link first. A suggestion goes away when the
    /// two are merged.
    ///
    /// # Errors
    /// Backend failures.
    async fn link_suggestions(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
    ) -> Result<Vec<LinkSuggestion>>;

    /// Merges customer `from` into `into`: `from`'s identities, conversations and messages move
    /// to `into` (its whole history comes along) and the merge is recorded so
    /// [`CustomerStore::unmerge`] can undo it. When both have an active conversation,
    /// `from`'s is resolved (its messages stay in `into`'s history).
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] for a customer merged with itself;
    /// [`crate::Error::Conflict`] when either customer has itself been merged away;
    /// [`crate::Error::NotFound`] for an unknown customer.
    async fn merge_customers(&self, req: &MergeCustomers) -> Result<Merge>;

    /// Undoes a merge: the identities and conversations that moved (with their messages, including
    /// any written since in those conversations) go back to the merged-away customer. Identities
    /// and conversations that moved on again since are left where they are.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] for an unknown merge; [`crate::Error::Conflict`] when it was
    /// undone already.
    async fn unmerge(&self, req: &Unmerge) -> Result<Merge>;

    /// The merges a customer took part in (either side), oldest first.
    ///
    /// # Errors
    /// Backend failures.
    async fn merges(&self, tenant: &TenantId, customer: CustomerId) -> Result<Vec<Merge>>;
}

/// Conveniences over any [`CustomerStore`].
pub trait CustomerStoreExt: CustomerStore {
    /// Every identity of a customer, by identity.
    ///
    /// # Errors
    /// As [`CustomerStore::identity_links`].
    fn identities(
        &self,
        tenant: &TenantId,
        customer: CustomerId,
    ) -> impl Future<Output = Result<Vec<Identity>>> + Send;
}

impl<T: CustomerStore + ?Sized> CustomerStoreExt for T {
    async fn identities(&self, tenant: &TenantId, customer: CustomerId) -> Result<Vec<Identity>> {
        Ok(self
            .identity_links(tenant, customer)
            .await?
            .into_iter()
            .map(|l| l.identity)
            .collect())
    }
}

/// One suggestion per candidate customer, in the order their identities were linked: with the
/// candidate's identity that proves the key when one does (a one-time code can go through it),
/// else its oldest. `found` holds every pair of identities sharing a key, with when the
/// candidate's was linked.
pub(crate) fn one_per_candidate(
    mut found: Vec<(DateTime<Utc>, LinkSuggestion)>,
) -> Vec<LinkSuggestion> {
    found.sort_by(|(a, sa), (b, sb)| {
        a.cmp(b)
            .then_with(|| sa.candidate_identity.cmp(&sb.candidate_identity))
            .then_with(|| sa.identity.cmp(&sb.identity))
    });
    let mut out: Vec<LinkSuggestion> = Vec::new();
    for (_, s) in found {
        match out.iter_mut().find(|o| o.candidate == s.candidate) {
            Some(o) if !o.candidate_proven && s.candidate_proven => *o = s,
            Some(_) => {}
            None => out.push(s),
        }
    }
    out
}

/// The profile of a new customer.
pub(crate) fn new_customer(req: &ResolveCustomer) -> Customer {
    Customer {
        id: CustomerId::new(),
        tenant: req.tenant.clone(),
        display_name: req.display_name.clone(),
        tier: CustomerTier::Standard,
        language: req.language.clone(),
        created_at: req.at,
    }
}
