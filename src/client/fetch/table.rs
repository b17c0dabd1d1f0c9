//! Where each object type is read: its `GET` path in Monite's OpenAPI document (API
//! 2024-05-25), whether the request names the entity, the parent its path needs, and what
//! its answer says about time and deletion. `tests/client/fetch_table.rs` checks every row
//! against a copy of the document.

use crate::event::ObjectType;

/// Whether a fetch sends `X-Monite-Entity-Id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntityHeader {
    /// Always: the event's `entity_id`; an event without one cannot be fetched.
    Required,
    /// When the event has an `entity_id` (`ocr_task`).
    Optional,
    /// Never: the path names the entity, or the object is the partner's (`entity`,
    /// `entity_settings`, `partner_settings`).
    None,
}

/// Which id fills the path's last parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdFrom {
    /// `object.id` (the legacy `object_id`).
    Object,
    /// The envelope's `entity_id` (an entity's settings).
    Entity,
    /// `object.id`, else the envelope's `entity_id`: they are the same for `entity`.
    ObjectOrEntity,
    /// Nothing: the path has no parameter (`/settings`).
    Nothing,
}

/// How one object type is fetched: a row of the table [`endpoint`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    object_type: &'static str,
    path: &'static str,
    entity_header: EntityHeader,
    parent: Option<&'static str>,
    id_from: IdFrom,
    updated_at: bool,
    deleted_statuses: &'static [&'static str],
    inferred: bool,
}

impl Endpoint {
    /// The path as Monite's OpenAPI document spells it, parameters in braces
    /// (`/counterparts/{counterpart_id}/addresses/{address_id}`).
    #[must_use]
    pub const fn path_template(&self) -> &'static str {
        self.path
    }

    /// Whether the request sends `X-Monite-Entity-Id`.
    #[must_use]
    pub const fn entity_header(&self) -> EntityHeader {
        self.entity_header
    }

    /// The parent id the path needs besides the object's own (`counterpart_id`,
    /// `payable_id`, `approval_policy_id`); `None` for a top-level object.
    #[must_use]
    pub const fn parent(&self) -> Option<&'static str> {
        self.parent
    }

    /// Whether the answer's schema has `updated_at`.
    #[must_use]
    pub const fn has_updated_at(&self) -> bool {
        self.updated_at
    }

    /// The `status` values that mean the object was deleted (empty where the schema has no
    /// such status: there a `404` alone says so).
    #[must_use]
    pub const fn deleted_statuses(&self) -> &'static [&'static str] {
        self.deleted_statuses
    }

    /// Whether the row is read from the document by name rather than stated by it: Monite's
    /// enum says `counterpart_tax_id` where its only path says `vat_ids`, and `export`
    /// where the path says `data_exports`.
    #[must_use]
    pub const fn is_inferred(&self) -> bool {
        self.inferred
    }

    /// The path to request, with `parent` and the event's ids filled in and percent-encoded.
    pub(super) fn fill(
        &self,
        object_id: Option<&str>,
        entity_id: Option<&str>,
        parent: Option<&str>,
    ) -> Option<String> {
        let id = match self.id_from {
            IdFrom::Object => object_id,
            IdFrom::Entity => entity_id,
            IdFrom::ObjectOrEntity => object_id.or(entity_id),
            IdFrom::Nothing => None,
        };
        let mut out = String::with_capacity(self.path.len() + 72);
        let mut rest = self.path;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}')? + open;
            let name = &rest[open + 1..close];
            let value = if Some(name) == self.parent {
                parent
            } else {
                id
            };
            out.push_str(&super::super::request::segment(value?).ok()?);
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        Some(out)
    }
}

const fn row(
    object_type: &'static str,
    path: &'static str,
    updated_at: bool,
    deleted_statuses: &'static [&'static str],
) -> Endpoint {
    Endpoint {
        object_type,
        path,
        entity_header: EntityHeader::Required,
        parent: None,
        id_from: IdFrom::Object,
        updated_at,
        deleted_statuses,
        inferred: false,
    }
}

impl Endpoint {
    const fn under(mut self, parent: &'static str) -> Self {
        self.parent = Some(parent);
        self
    }

    const fn header(mut self, header: EntityHeader, id_from: IdFrom) -> Self {
        self.entity_header = header;
        self.id_from = id_from;
        self
    }

    const fn inferred(mut self) -> Self {
        self.inferred = true;
        self
    }
}

const DELETED: &[&str] = &["deleted"];

/// Every object type with a `GET` path, in [`ObjectType::KNOWN`]'s order; the others
/// (`account`, `approval`, `todo_task`, `workflow`, `workflow_pipeline`, `transaction`:
/// no path at all; `payment` and `counterpart_partner_metadata`: none that the event's ids
/// certainly fill) have none.
const TABLE: &[Endpoint] = &[
    row(
        "accounting_connection",
        "/accounting_connections/{connection_id}",
        true,
        &[],
    ),
    // `ApprovalPolicyStatus` has `deleted`; the resource's own enum lists only the others.
    row(
        "approval_policy",
        "/approval_policies/{approval_policy_id}",
        true,
        DELETED,
    ),
    row(
        "approval_policy_process",
        "/approval_policies/{approval_policy_id}/processes/{process_id}",
        true,
        &[],
    )
    .under("approval_policy_id"),
    row(
        "approval_request",
        "/approval_requests/{approval_request_id}",
        true,
        &[],
    ),
    row(
        "batch_payment",
        "/batch_payments/{batch_payment_id}",
        false,
        &[],
    ),
    row("comment", "/comments/{comment_id}", true, DELETED),
    row("counterpart", "/counterparts/{counterpart_id}", true, &[]),
    row(
        "counterpart_address",
        "/counterparts/{counterpart_id}/addresses/{address_id}",
        false,
        &[],
    )
    .under("counterpart_id"),
    row(
        "counterpart_bank_account",
        "/counterparts/{counterpart_id}/bank_accounts/{bank_account_id}",
        false,
        &[],
    )
    .under("counterpart_id"),
    row(
        "counterpart_contact_person",
        "/counterparts/{counterpart_id}/contacts/{contact_id}",
        false,
        &[],
    )
    .under("counterpart_id"),
    row(
        "counterpart_tax_id",
        "/counterparts/{counterpart_id}/vat_ids/{vat_id}",
        false,
        &[],
    )
    .under("counterpart_id")
    .inferred(),
    row(
        "counterpart_vat_id",
        "/counterparts/{counterpart_id}/vat_ids/{vat_id}",
        false,
        &[],
    )
    .under("counterpart_id"),
    row(
        "delivery_note",
        "/delivery_notes/{delivery_note_id}",
        true,
        &[],
    ),
    row("entity", "/entities/{entity_id}", true, DELETED)
        .header(EntityHeader::None, IdFrom::ObjectOrEntity),
    row(
        "entity_bank_account",
        "/bank_accounts/{bank_account_id}",
        false,
        &[],
    ),
    row(
        "entity_settings",
        "/entities/{entity_id}/settings",
        false,
        &[],
    )
    .header(EntityHeader::None, IdFrom::Entity),
    row(
        "entity_user",
        "/entity_users/{entity_user_id}",
        true,
        DELETED,
    ),
    row("export", "/data_exports/{document_export_id}", false, &[]).inferred(),
    row("ocr_task", "/ocr_tasks/{task_id}", true, &[])
        .header(EntityHeader::Optional, IdFrom::Object),
    row(
        "overdue_reminder",
        "/overdue_reminders/{overdue_reminder_id}",
        true,
        &[],
    ),
    row("partner_settings", "/settings", false, &[]).header(EntityHeader::None, IdFrom::Nothing),
    row("payable", "/payables/{payable_id}", true, &[]),
    row(
        "payable.line_item",
        "/payables/{payable_id}/line_items/{line_item_id}",
        false,
        &[],
    )
    .under("payable_id"),
    row(
        "payable_line_item",
        "/payables/{payable_id}/line_items/{line_item_id}",
        false,
        &[],
    )
    .under("payable_id"),
    row(
        "payables_credit_note",
        "/payable_credit_notes/{credit_note_id}",
        true,
        &[],
    ),
    row(
        "payables_purchase_order",
        "/payable_purchase_orders/{purchase_order_id}",
        true,
        &[],
    ),
    row(
        "payment_intent",
        "/payment_intents/{payment_intent_id}",
        true,
        &[],
    ),
    row(
        "payment_link",
        "/payment_links/{payment_link_id}",
        false,
        &[],
    ),
    row(
        "payment_reminder",
        "/payment_reminders/{payment_reminder_id}",
        true,
        DELETED,
    ),
    row("product", "/products/{product_id}", true, &[]),
    row("project", "/projects/{project_id}", true, &[]),
    row("receipt", "/receipts/{receipt_id}", true, &[]),
    row("receivable", "/receivables/{receivable_id}", true, DELETED),
    row("recurrence", "/recurrences/{recurrence_id}", true, &[]),
    row("role", "/roles/{role_id}", true, DELETED),
    row("tag", "/tags/{tag_id}", true, &[]),
];

/// How `object_type` is fetched; `None` where Monite has no `GET` for it that an event's
/// ids fill, and for every [`ObjectType::Unknown`].
///
/// ```
/// use monite_webhooks::ObjectType;
/// use monite_webhooks::client::fetch::{EntityHeader, endpoint};
///
/// let line_item = endpoint(&ObjectType::PayableDotLineItem).unwrap();
/// assert_eq!(line_item.path_template(), "/payables/{payable_id}/line_items/{line_item_id}");
/// assert_eq!(line_item.parent(), Some("payable_id"));
/// assert_eq!(endpoint(&ObjectType::Entity).unwrap().entity_header(), EntityHeader::None);
/// assert!(endpoint(&ObjectType::Workflow).is_none());
/// assert!(endpoint(&"invoice_batch".parse().unwrap()).is_none());
/// ```
#[must_use]
pub fn endpoint(object_type: &ObjectType) -> Option<&'static Endpoint> {
    if !object_type.is_known() {
        return None;
    }
    let name = object_type.as_str();
    TABLE.iter().find(|row| row.object_type == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_name_known_object_types_once() {
        for row in TABLE {
            let parsed: ObjectType = row.object_type.parse().unwrap_or(ObjectType::Account);
            assert!(parsed.is_known(), "{}", row.object_type);
            assert_eq!(
                TABLE
                    .iter()
                    .filter(|r| r.object_type == row.object_type)
                    .count(),
                1
            );
        }
    }

    #[test]
    fn fill_encodes_and_places_the_parent() {
        let row = endpoint(&ObjectType::CounterpartAddress).unwrap();
        assert_eq!(
            row.fill(Some("a/1"), Some("e"), Some("c 2")).as_deref(),
            Some("/counterparts/c%202/addresses/a%2F1")
        );
        assert_eq!(row.fill(Some("a"), Some("e"), None), None);
        let settings = endpoint(&ObjectType::PartnerSettings).unwrap();
        assert_eq!(
            settings.fill(None, None, None).as_deref(),
            Some("/settings")
        );
    }
}
