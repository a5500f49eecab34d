//! `persist db status|migrate|down URL`: the table layout of a PostgreSQL backend, with up and
//! down migrations (the password comes from `PGPASSWORD`, never the URL).

use std::io::Write;

use persist_postgres::LAYOUT_VERSION;

use crate::error::{CliError, Status};
use crate::{open, outln};

/// Arguments of `persist db`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    action: Action,
}

/// The actions of `persist db`.
#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Show the database's layout and the migrations this build would apply.
    Status {
        /// postgres://user@host:port/database (password from PGPASSWORD).
        url: String,
    },
    /// Apply every missing up migration (refused on a layout newer than this build's).
    Migrate {
        /// postgres://user@host:port/database (password from PGPASSWORD).
        url: String,
    },
    /// Revert the newest migration (refused while it would delete generations).
    Down {
        /// postgres://user@host:port/database (password from PGPASSWORD).
        url: String,
    },
}

/// Runs the action.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Status, CliError> {
    match &args.action {
        Action::Status { url } => {
            let config = open::postgres_config(url)?;
            let status = persist_postgres::status(&config).map_err(CliError::Postgres)?;
            let verdict = match status.current.cmp(&LAYOUT_VERSION) {
                std::cmp::Ordering::Equal => "current".to_string(),
                std::cmp::Ordering::Less => "outdated: run `persist db migrate`".to_string(),
                std::cmp::Ordering::Greater => {
                    "NEWER than this build: a newer release migrated it".to_string()
                }
            };
            outln!(
                out,
                "{}: layout {} of {} ({verdict})",
                status.location,
                status.current,
                status.known
            )?;
            for (version, what) in &status.pending {
                outln!(out, "  pending {version}: {what}")?;
            }
            Ok(if status.current == LAYOUT_VERSION {
                Status::Ok
            } else {
                Status::VerificationFailed
            })
        }
        Action::Migrate { url } => {
            let config = open::postgres_config(url)?;
            let applied = persist_postgres::migrate(&config).map_err(CliError::Postgres)?;
            if applied.is_empty() {
                outln!(
                    out,
                    "{}: already at layout {LAYOUT_VERSION}",
                    config.location()
                )?;
            }
            for version in applied {
                outln!(out, "{}: applied layout {version}", config.location())?;
            }
            Ok(Status::Ok)
        }
        Action::Down { url } => {
            let config = open::postgres_config(url)?;
            let left = persist_postgres::down(&config).map_err(CliError::Postgres)?;
            outln!(out, "{}: now at layout {left}", config.location())?;
            Ok(Status::Ok)
        }
    }
}
