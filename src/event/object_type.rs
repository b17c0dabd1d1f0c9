//! `ObjectType`: what kind of Monite object an event is about.

use super::event_type::EventType;
use super::wire_enum::wire_enum;

wire_enum! {
    /// The kind of object an event is about: the envelope's `object_type`, and what a
    /// subscription is created for.
    ///
    /// Every value in Monite's `WebhookObjectType` enum (API 2024-05-25) and documentation
    /// is a variant. Monite adds values over time; those parse to
    /// [`ObjectType::Unknown`], route to catch-all handlers, and print back unchanged.
    ///
    /// Monite's documents spell line items two ways, and both are kept:
    /// [`PayableDotLineItem`](Self::PayableDotLineItem) is the API enum's
    /// `payable.line_item`, [`PayableLineItem`](Self::PayableLineItem) the events table's
    /// `payable_line_item`.
    ///
    /// ```
    /// use monite_webhooks::ObjectType;
    ///
    /// assert_eq!("payable.line_item".parse(), Ok(ObjectType::PayableDotLineItem));
    /// let later: ObjectType = "invoice_batch".parse().unwrap();
    /// assert!(!later.is_known());
    /// assert_eq!(later.to_string(), "invoice_batch");
    /// ```
    pub enum ObjectType {
        Account => "account",
        AccountingConnection => "accounting_connection",
        Approval => "approval",
        ApprovalPolicy => "approval_policy",
        ApprovalPolicyProcess => "approval_policy_process",
        ApprovalRequest => "approval_request",
        BatchPayment => "batch_payment",
        Comment => "comment",
        Counterpart => "counterpart",
        CounterpartAddress => "counterpart_address",
        CounterpartBankAccount => "counterpart_bank_account",
        CounterpartContactPerson => "counterpart_contact_person",
        CounterpartPartnerMetadata => "counterpart_partner_metadata",
        CounterpartTaxId => "counterpart_tax_id",
        CounterpartVatId => "counterpart_vat_id",
        DeliveryNote => "delivery_note",
        Entity => "entity",
        EntityBankAccount => "entity_bank_account",
        EntitySettings => "entity_settings",
        EntityUser => "entity_user",
        Export => "export",
        OcrTask => "ocr_task",
        OverdueReminder => "overdue_reminder",
        PartnerSettings => "partner_settings",
        Payable => "payable",
        PayableDotLineItem => "payable.line_item",
        PayableLineItem => "payable_line_item",
        PayablesCreditNote => "payables_credit_note",
        PayablesPurchaseOrder => "payables_purchase_order",
        Payment => "payment",
        PaymentIntent => "payment_intent",
        PaymentLink => "payment_link",
        PaymentReminder => "payment_reminder",
        Product => "product",
        Project => "project",
        Receipt => "receipt",
        Receivable => "receivable",
        Recurrence => "recurrence",
        Role => "role",
        Tag => "tag",
        TodoTask => "todo_task",
        Transaction => "transaction",
        Workflow => "workflow",
        WorkflowPipeline => "workflow_pipeline",    }
}

impl ObjectType {
    /// The event names Monite documents for this object type (empty where none are
    /// published). Monite sends others too; they still parse and route.
    #[must_use]
    pub fn documented_events(&self) -> &'static [EventType] {
        match self {
            Self::AccountingConnection => &[
                EventType::Connected,
                EventType::Deauthorized,
                EventType::Disconnected,
                EventType::PendingAuth,
            ],
            Self::ApprovalPolicy => &[
                EventType::Created,
                EventType::Deleted,
                EventType::ProcessCanceled,
                EventType::Updated,
            ],
            Self::ApprovalPolicyProcess => &[EventType::Created, EventType::ExecutionError],
            Self::ApprovalRequest => &[
                EventType::Approved,
                EventType::Canceled,
                EventType::Created,
                EventType::Rejected,
            ],
            Self::BatchPayment => &[EventType::StatusUpdated],
            Self::Comment => &[
                EventType::Create,
                EventType::Created,
                EventType::Update,
                EventType::Updated,
            ],
            Self::Counterpart => &[
                EventType::Created,
                EventType::Delete,
                EventType::MetadataUpdate,
                EventType::Updated,
            ],
            Self::CounterpartAddress => &[
                EventType::Created,
                EventType::Delete,
                EventType::MadeDefault,
                EventType::Update,
            ],
            Self::CounterpartBankAccount => {
                &[EventType::Created, EventType::Delete, EventType::Update]
            }
            Self::CounterpartContactPerson => &[
                EventType::Created,
                EventType::Delete,
                EventType::MakeDefault,
                EventType::Update,
            ],
            Self::CounterpartTaxId => &[EventType::Created, EventType::Delete, EventType::Update],
            Self::CounterpartVatId => &[EventType::Created, EventType::Delete, EventType::Update],
            Self::DeliveryNote => &[
                EventType::Canceled,
                EventType::Created,
                EventType::Deleted,
                EventType::Delivered,
                EventType::Updated,
            ],
            Self::Entity => &[
                EventType::Created,
                EventType::OnboardingRequirementsStatusUpdated,
                EventType::OnboardingRequirementsUpdated,
                EventType::PaymentMethodUsAchActivated,
                EventType::PaymentMethodUsAchDeactivated,
                EventType::Updated,
            ],
            Self::EntityUser => &[EventType::Created, EventType::Deleted, EventType::Updated],
            Self::OcrTask => &[EventType::Finished],
            Self::Payable => &[
                EventType::Approved,
                EventType::Canceled,
                EventType::Created,
                EventType::CreatedFromMail,
                EventType::Deleted,
                EventType::MultipleApprovalPoliciesMatched,
                EventType::OcrFinished,
                EventType::Paid,
                EventType::PartiallyPaid,
                EventType::Rejected,
                EventType::Reopened,
                EventType::SubmittedForApproval,
                EventType::Updated,
            ],
            Self::PayableLineItem => &[EventType::Created, EventType::Deleted, EventType::Updated],
            Self::Payment => &[EventType::Created, EventType::Updated],
            Self::PaymentIntent => &[EventType::StatusUpdated],
            Self::PaymentLink => &[EventType::Created, EventType::StatusUpdated],
            Self::Project => &[EventType::Created, EventType::Deleted, EventType::Updated],
            Self::Receipt => &[
                EventType::Created,
                EventType::Deleted,
                EventType::OcrFinished,
                EventType::Updated,
            ],
            Self::Role => &[EventType::Created, EventType::Deleted, EventType::Updated],
            Self::Tag => &[EventType::Created, EventType::Deleted, EventType::Updated],
            _ => &[],
        }
    }
}

/// Every object type Monite's API accepts for a subscription: its `WebhookObjectType` enum
/// (API 2024-05-25), in that order. Two of [`ObjectType::KNOWN`] are not in it
/// (`payable_line_item` and `counterpart_vat_id`, spellings from Monite's events tables):
/// Monite would refuse a subscription for them.
#[cfg(feature = "client")]
pub(crate) const SUBSCRIBABLE: [ObjectType; 42] = [
    ObjectType::Account,
    ObjectType::AccountingConnection,
    ObjectType::Approval,
    ObjectType::ApprovalRequest,
    ObjectType::ApprovalPolicy,
    ObjectType::ApprovalPolicyProcess,
    ObjectType::BatchPayment,
    ObjectType::Comment,
    ObjectType::Counterpart,
    ObjectType::CounterpartAddress,
    ObjectType::CounterpartBankAccount,
    ObjectType::CounterpartContactPerson,
    ObjectType::CounterpartPartnerMetadata,
    ObjectType::CounterpartTaxId,
    ObjectType::Entity,
    ObjectType::EntityBankAccount,
    ObjectType::EntitySettings,
    ObjectType::EntityUser,
    ObjectType::Export,
    ObjectType::OverdueReminder,
    ObjectType::PartnerSettings,
    ObjectType::Payable,
    ObjectType::PayablesCreditNote,
    ObjectType::PayablesPurchaseOrder,
    ObjectType::PayableDotLineItem,
    ObjectType::Payment,
    ObjectType::PaymentIntent,
    ObjectType::PaymentLink,
    ObjectType::PaymentReminder,
    ObjectType::Product,
    ObjectType::Project,
    ObjectType::Receivable,
    ObjectType::Recurrence,
    ObjectType::Role,
    ObjectType::Tag,
    ObjectType::TodoTask,
    ObjectType::Workflow,
    ObjectType::WorkflowPipeline,
    ObjectType::OcrTask,
    ObjectType::DeliveryNote,
    ObjectType::Receipt,
    ObjectType::Transaction,
];
