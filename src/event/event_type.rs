//! `EventType`: what happened to the object.

use super::wire_enum::wire_enum;

wire_enum! {
    /// What happened: the event name without its object-type prefix, as in a subscription's
    /// `event_types` (`created`, `onboarding_requirements.updated`, ...).
    ///
    /// Every name Monite documents is a variant, including the legacy 2022 actions
    /// (`create`, `update`, `delete`) and Monite's own inconsistent spellings (`comment` has
    /// both `create` and `created`), each kept distinct. Names Monite adds later parse to
    /// [`EventType::Unknown`] and print back unchanged.
    ///
    /// ```
    /// use monite_webhooks::EventType;
    ///
    /// let name: EventType = "onboarding_requirements.updated".parse().unwrap();
    /// assert_eq!(name, EventType::OnboardingRequirementsUpdated);
    /// assert_eq!(name.as_str(), "onboarding_requirements.updated");
    /// ```
    pub enum EventType {
        Approved => "approved",
        Canceled => "canceled",
        Connected => "connected",
        Create => "create",
        Created => "created",
        CreatedFromMail => "created_from_mail",
        Deauthorized => "deauthorized",
        Delete => "delete",
        Deleted => "deleted",
        Delivered => "delivered",
        Disconnected => "disconnected",
        ExecutionError => "execution_error",
        Finished => "finished",
        MadeDefault => "made_default",
        MakeDefault => "make_default",
        MetadataUpdate => "metadata_update",
        MultipleApprovalPoliciesMatched => "multiple_approval_policies_matched",
        OcrFinished => "ocr_finished",
        OnboardingRequirementsStatusUpdated => "onboarding_requirements.status_updated",
        OnboardingRequirementsUpdated => "onboarding_requirements.updated",
        Paid => "paid",
        PartiallyPaid => "partially_paid",
        PaymentMethodUsAchActivated => "payment_method.us_ach.activated",
        PaymentMethodUsAchDeactivated => "payment_method.us_ach.deactivated",
        PendingAuth => "pending_auth",
        ProcessCanceled => "process_canceled",
        Rejected => "rejected",
        Reopened => "reopened",
        StatusUpdated => "status_updated",
        SubmittedForApproval => "submitted_for_approval",
        Update => "update",
        Updated => "updated",    }
}
