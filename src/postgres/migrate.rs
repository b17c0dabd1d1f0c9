//! The tables' migrations: for each component (the idempotency store, the inbox, the
//! checkpoints), `.sql` files numbered from 1 in `migrations/<component>/`, applied in
//! order under an advisory lock and recorded in `<prefix>_migrations`.
//!
//! Migration 1 of each component is the schema releases before numbered migrations
//! created with `CREATE … IF NOT EXISTS`: it changes nothing in a database they made,
//! which then takes the later migrations like any other. Every migration is idempotent,
//! so that `schema_sql`, all of them in one text, can run again in an owner's own
//! migrations.

use super::{Database, Tables};
use crate::error::{Error, ErrorKind, Result};

/// One numbered step of a component's schema.
pub(crate) struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// The tables one store owns, and the migrations that make them.
pub(crate) struct Component {
    name: &'static str,
    migrations: &'static [Migration],
}

/// `<prefix>_claims` and `<prefix>_handled`, of the idempotency store and its
/// transactional handlers.
pub(crate) static IDEMPOTENCY: Component = Component {
    name: "idempotency",
    migrations: &[
        Migration {
            version: 1,
            name: "claims",
            sql: include_str!("migrations/idempotency/001_claims.sql"),
        },
        Migration {
            version: 2,
            name: "handled",
            sql: include_str!("migrations/idempotency/002_handled.sql"),
        },
    ],
};

/// `<prefix>_inbox_events`, `_inbox_attempts` and `_inbox_events_paused`.
pub(crate) static INBOX: Component = Component {
    name: "inbox",
    migrations: &[
        Migration {
            version: 1,
            name: "events",
            sql: include_str!("migrations/inbox/001_events.sql"),
        },
        Migration {
            version: 2,
            name: "retry_unhandled",
            sql: include_str!("migrations/inbox/002_retry_unhandled.sql"),
        },
        Migration {
            version: 3,
            name: "autovacuum",
            sql: include_str!("migrations/inbox/003_autovacuum.sql"),
        },
    ],
};

/// `<prefix>_checkpoints`, of the reconciler.
#[cfg(feature = "client")]
pub(crate) static CHECKPOINTS: Component = Component {
    name: "checkpoints",
    migrations: &[
        Migration {
            version: 1,
            name: "checkpoints",
            sql: include_str!("migrations/checkpoints/001_checkpoints.sql"),
        },
        Migration {
            version: 2,
            name: "copy_shared_table",
            sql: include_str!("migrations/checkpoints/002_copy_shared_table.sql"),
        },
    ],
};

/// `<prefix>_fleet_budget`, `<prefix>_fleet_leases` and `<prefix>_fleet_tallies`, which
/// replicas share.
#[cfg(feature = "client")]
pub(crate) static FLEET: Component = Component {
    name: "fleet",
    migrations: &[
        Migration {
            version: 1,
            name: "budget",
            sql: include_str!("migrations/fleet/001_budget.sql"),
        },
        Migration {
            version: 2,
            name: "leases",
            sql: include_str!("migrations/fleet/002_leases.sql"),
        },
        Migration {
            version: 3,
            name: "tallies",
            sql: include_str!("migrations/fleet/003_tallies.sql"),
        },
    ],
};

impl Component {
    /// Every migration, in order, for these tables: what `schema_sql` gives an owner who
    /// runs their own migrations.
    pub(crate) fn sql(&self, tables: &Tables) -> String {
        self.migrations
            .iter()
            .map(|migration| tables.fill(migration.sql))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Database {
    /// Takes the advisory lock every schema on this prefix is made under, until `tx` ends:
    /// the keys releases before numbered migrations locked on (the store's prefix, the
    /// inbox's events table), always in this order, so that an older replica creating its
    /// tables meanwhile waits as well.
    async fn schema_lock(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    ) -> std::result::Result<(), sqlx::Error> {
        let tables = self.tables();
        for key in [&tables.prefix, &tables.events] {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(key)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Runs `sql` (statements of the owner's own schema) in one transaction under the
    /// schema lock.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if PostgreSQL refuses or cannot be reached.
    pub(crate) async fn run_under_schema_lock(&self, sql: &str) -> Result<()> {
        let run = async {
            let mut tx = self.pool().begin().await?;
            self.schema_lock(&mut tx).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        };
        run.await.map_err(|e: sqlx::Error| {
            Error::new(
                ErrorKind::StoreUnavailable,
                format!("cannot create the owner's schema: {e}"),
            )
            .with_source(e)
        })
    }

    /// Applies `component`'s migrations this database lacks, in one transaction, and
    /// records them. Safe from every replica at once: the advisory lock makes the others
    /// wait, and then find the migrations recorded.
    ///
    /// # Errors
    /// An error of `kind` if PostgreSQL refuses or cannot be reached.
    pub(crate) async fn migrate(&self, component: &Component, kind: ErrorKind) -> Result<()> {
        let tables = self.tables();
        let run = async {
            let mut tx = self.pool().begin().await?;
            self.schema_lock(&mut tx).await?;
            let record = &tables.migrations;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE IF NOT EXISTS {record} (\n    \
                   component text NOT NULL,\n    \
                   version integer NOT NULL,\n    \
                   name text NOT NULL,\n    \
                   applied_at timestamptz NOT NULL DEFAULT now(),\n    \
                   PRIMARY KEY (component, version)\n)"
            )))
            .execute(&mut *tx)
            .await?;
            let applied: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT version FROM {record} WHERE component = $1"
            )))
            .bind(component.name)
            .fetch_all(&mut *tx)
            .await?;
            for migration in component.migrations {
                if applied.contains(&migration.version) {
                    continue;
                }
                sqlx::raw_sql(sqlx::AssertSqlSafe(tables.fill(migration.sql)))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO {record} (component, version, name) VALUES ($1, $2, $3)"
                )))
                .bind(component.name)
                .bind(migration.version)
                .bind(migration.name)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        };
        run.await.map_err(|e: sqlx::Error| {
            Error::new(
                kind,
                format!(
                    "cannot migrate the {} tables of prefix {}: {e}",
                    component.name, tables.prefix
                ),
            )
            .with_source(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn components() -> Vec<&'static Component> {
        vec![
            &IDEMPOTENCY,
            &INBOX,
            #[cfg(feature = "client")]
            &CHECKPOINTS,
            #[cfg(feature = "client")]
            &FLEET,
        ]
    }

    #[test]
    fn migrations_are_numbered_from_one_and_fill_every_name() {
        let tables = Tables::new("billing.monite").unwrap();
        for component in components() {
            for (at, migration) in component.migrations.iter().enumerate() {
                assert_eq!(usize::try_from(migration.version).unwrap(), at + 1);
                let sql = tables.fill(migration.sql);
                assert!(
                    !sql.contains('{') && !sql.contains('}'),
                    "{} {}: {sql}",
                    component.name,
                    migration.name
                );
            }
        }
    }
}
