//! The one place the tables' names are made, from the table prefix: every statement and
//! every migration takes them from here.

use crate::error::{Error, ErrorKind, Result};

/// Every table of one prefix, named once.
#[derive(Debug)]
pub(crate) struct Tables {
    /// The prefix itself, `monite_webhook` or `schema.name`.
    pub(crate) prefix: String,
    /// The claims and done marks of the idempotency store.
    pub(crate) claims: String,
    /// The events transactional handlers committed.
    pub(crate) handled: String,
    /// The inbox's events, one row each.
    pub(crate) events: String,
    /// The inbox's attempts, one row each.
    pub(crate) attempts: String,
    /// The namespaces whose inbox workers are paused.
    pub(crate) paused: String,
    /// The reconciler's checkpoints.
    pub(crate) checkpoints: String,
    /// The fleet's shared rate budget, one row per budget.
    pub(crate) budget: String,
    /// The fleet's leases: which replica does the work only one should do, until when.
    pub(crate) leases: String,
    /// Counts any replica adds and a lease's holder takes.
    pub(crate) tallies: String,
    /// Which migrations ran, per component.
    pub(crate) migrations: String,
    /// `handled` before migration 2 of the idempotency tables renamed it: a view now.
    handled_before: String,
    /// The prefix without its schema: an index lives in its table's schema and takes an
    /// unqualified name, as does the new name of a renamed table.
    bare: String,
}

impl Tables {
    /// The tables of `prefix`: one or two identifiers of ASCII letters, digits and `_`
    /// (not starting with a digit) joined by a dot, at most 40 bytes.
    ///
    /// # Errors
    /// [`ErrorKind::Misconfigured`] for any other prefix.
    pub(crate) fn new(prefix: &str) -> Result<Self> {
        let valid = |part: &str| {
            part.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        let parts: Vec<&str> = prefix.split('.').collect();
        if parts.len() > 2 || !parts.iter().all(|part| valid(part)) || prefix.len() > 40 {
            return Err(Error::new(
                ErrorKind::Misconfigured,
                format!("{prefix:?} is not a table prefix"),
            ));
        }
        let name = |suffix: &str| format!("{prefix}_{suffix}");
        Ok(Self {
            claims: name("claims"),
            handled: name("handled"),
            events: name("inbox_events"),
            attempts: name("inbox_attempts"),
            paused: name("inbox_events_paused"),
            checkpoints: name("checkpoints"),
            budget: name("fleet_budget"),
            leases: name("fleet_leases"),
            tallies: name("fleet_tallies"),
            migrations: name("migrations"),
            handled_before: name("inbox"),
            bare: prefix.rsplit('.').next().unwrap_or(prefix).to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// `template` (a migration) with each `{name}` replaced by the table it stands for.
    pub(crate) fn fill(&self, template: &str) -> String {
        let handled_name = format!("{}_handled", self.bare);
        let names = [
            ("{claims}", self.claims.as_str()),
            ("{handled}", &self.handled),
            ("{handled_before}", &self.handled_before),
            ("{handled_name}", &handled_name),
            ("{events}", &self.events),
            ("{attempts}", &self.attempts),
            ("{paused}", &self.paused),
            ("{checkpoints}", &self.checkpoints),
            ("{budget}", &self.budget),
            ("{leases}", &self.leases),
            ("{tallies}", &self.tallies),
            ("{bare}", &self.bare),
        ];
        names
            .iter()
            .fold(template.to_owned(), |sql, (placeholder, name)| {
                sql.replace(placeholder, name)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked() {
        for good in ["monite_webhook", "billing.monite", "_x", "a1"] {
            assert!(Tables::new(good).is_ok(), "{good}");
        }
        for bad in ["", "1a", "a.b.c", "a-b", "a;drop", "a b", &"a".repeat(41)] {
            assert!(Tables::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_schema_qualified_prefix_names_indexes_and_renames_bare() {
        let tables = Tables::new("billing.monite").unwrap();
        assert_eq!(tables.handled, "billing.monite_handled");
        assert_eq!(
            tables.fill("ALTER TABLE {handled_before} RENAME TO {handled_name}; {bare}_x"),
            "ALTER TABLE billing.monite_inbox RENAME TO monite_handled; monite_x"
        );
    }
}
