//! Where the database is: a `postgres://` URL or the standard `PG*` environment variables, and
//! the errors of reaching it. The password is never part of a location, an error or a log line.

use std::str::FromStr;

use postgres::config::Host;
use postgres::error::SqlState;

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The URL or the environment does not describe a connection.
    #[error("invalid PostgreSQL connection {what}: {reason}")]
    InvalidConfig {
        /// The URL without its password, or `environment`.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// Nothing answered at the address: the server is down or elsewhere.
    #[error(
        "cannot reach the PostgreSQL server of {location}: {source} (is it running and listening \
         there?)"
    )]
    Unreachable {
        /// The redacted location.
        location: String,
        /// The connection error.
        source: postgres::Error,
    },
    /// The server refused the user's password (or the user).
    #[error("PostgreSQL refused the credentials of user {user} for {location}")]
    Authentication {
        /// The redacted location.
        location: String,
        /// The user.
        user: String,
    },
    /// The database does not exist on that server.
    #[error("database {database} does not exist on the PostgreSQL server of {location}")]
    NoDatabase {
        /// The redacted location.
        location: String,
        /// The database asked for.
        database: String,
    },
    /// The database's table layout is newer than this build knows: a newer release migrated
    /// it. Nothing is touched.
    #[error(
        "the persist tables in {location} are at layout {found}, newer than this build's \
         {known}: deploy the release that migrated them (or a newer one)"
    )]
    LayoutTooNew {
        /// The redacted location.
        location: String,
        /// The layout found.
        found: u32,
        /// The newest layout this build knows.
        known: u32,
    },
    /// The database's table layout is older than this build needs, and migrating was not
    /// asked for.
    #[error(
        "the persist tables in {location} are at layout {found}, this build needs {needed}: run \
         `persist db migrate` (or connect with Migrate::Apply)"
    )]
    LayoutOutdated {
        /// The redacted location.
        location: String,
        /// The layout found.
        found: u32,
        /// The layout needed.
        needed: u32,
    },
    /// A down migration would delete rows (generations, recovery records): refused.
    #[error(
        "refusing to migrate {location} down from layout {from}: table {table} holds {rows} \
         {what}, which the down migration would delete"
    )]
    DownRefused {
        /// The redacted location.
        location: String,
        /// The layout it would leave.
        from: u32,
        /// The table the step would drop.
        table: &'static str,
        /// What its rows are (`generation(s)`, `recovery record(s)`).
        what: &'static str,
        /// The rows it holds.
        rows: i64,
    },
    /// A statement failed.
    #[error("{op} in {location}: {source}")]
    Sql {
        /// What was being done.
        op: &'static str,
        /// The redacted location.
        location: String,
        /// The server's or the client's error.
        source: postgres::Error,
    },
}

/// A connection description: the client's configuration and its redacted location.
#[derive(Clone)]
pub struct PgConfig {
    pub(crate) config: postgres::Config,
    location: String,
}

impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password: the client's own Debug would print it.
        f.debug_struct("PgConfig")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl PgConfig {
    /// A connection from a `postgres://user:password@host:port/database` URL (or any form
    /// `tokio-postgres` accepts).
    ///
    /// ```
    /// let config = persist_postgres::PgConfig::from_url("postgres://agent:secret@db:5433/state").unwrap();
    /// assert_eq!(config.location(), "postgres://agent@db:5433/state");
    /// ```
    pub fn from_url(url: &str) -> Result<PgConfig, PgError> {
        let config = postgres::Config::from_str(url).map_err(|e| PgError::InvalidConfig {
            what: redact_url(url),
            reason: e.to_string(),
        })?;
        Ok(PgConfig::new(config))
    }

    /// [`PgConfig::from_url`], with the password from `PGPASSWORD` when the URL has none (for
    /// command lines: a password in a URL is visible in the process list).
    pub fn from_url_and_env(url: &str) -> Result<PgConfig, PgError> {
        let mut config = PgConfig::from_url(url)?;
        if config.config.get_password().is_none()
            && let Some(password) = std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty())
        {
            config.config.password(password);
        }
        Ok(config)
    }

    /// Whether the configuration carries a password.
    pub fn has_password(&self) -> bool {
        self.config.get_password().is_some()
    }

    /// A connection from the standard environment variables `PGHOST` (default `localhost`),
    /// `PGPORT` (5432), `PGUSER` (the login name), `PGPASSWORD` and `PGDATABASE` (the user).
    pub fn from_env() -> Result<PgConfig, PgError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut config = postgres::Config::new();
        let user = var("PGUSER")
            .or_else(|| var("USER"))
            .ok_or_else(|| PgError::InvalidConfig {
                what: "environment".into(),
                reason: "neither PGUSER nor USER is set".into(),
            })?;
        config.host(&var("PGHOST").unwrap_or_else(|| "localhost".into()));
        if let Some(port) = var("PGPORT") {
            let port = port.parse::<u16>().map_err(|_| PgError::InvalidConfig {
                what: "environment".into(),
                reason: format!("PGPORT {port:?} is not a port number"),
            })?;
            config.port(port);
        }
        if let Some(password) = var("PGPASSWORD") {
            config.password(password);
        }
        config.dbname(&var("PGDATABASE").unwrap_or_else(|| user.clone()));
        config.user(&user);
        Ok(PgConfig::new(config))
    }

    fn new(mut config: postgres::Config) -> PgConfig {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        config.application_name("persist");
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("?");
        let db = config.get_dbname().unwrap_or(user);
        let location = format!("postgres://{user}@{host}:{port}/{db}");
        PgConfig { config, location }
    }

    /// Where the database is, without the password: `postgres://user@host:port/database`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Opens one connection, telling a server that is down, refused credentials and a missing
    /// database apart.
    pub(crate) fn client(&self) -> Result<postgres::Client, PgError> {
        self.config
            .connect(postgres::NoTls)
            .map_err(|e| self.connect_error(e))
    }

    fn connect_error(&self, e: postgres::Error) -> PgError {
        let location = self.location.clone();
        match e.code() {
            Some(c)
                if *c == SqlState::INVALID_PASSWORD
                    || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                PgError::Authentication {
                    location,
                    user: self.config.get_user().unwrap_or("?").to_string(),
                }
            }
            Some(c) if *c == SqlState::INVALID_CATALOG_NAME => PgError::NoDatabase {
                location,
                database: self.config.get_dbname().unwrap_or("?").to_string(),
            },
            Some(_) => PgError::Sql {
                op: "connect",
                location,
                source: e,
            },
            None => PgError::Unreachable {
                location,
                source: e,
            },
        }
    }

    /// A failed statement.
    pub(crate) fn sql(&self, op: &'static str, source: postgres::Error) -> PgError {
        PgError::Sql {
            op,
            location: self.location.clone(),
            source,
        }
    }
}

/// `url` with its password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL)".into();
    };
    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}/{tail}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_and_redacted_urls_never_hold_the_password() {
        let url = "postgres://agent:s3cr3t@db.example:5433/state?sslmode=disable";
        assert!(!redact_url(url).contains("s3cr3t"));
        let config = PgConfig::from_url(url).unwrap();
        assert_eq!(config.location(), "postgres://agent@db.example:5433/state");
        assert!(!format!("{config:?}").contains("s3cr3t"));
        let bad = PgConfig::from_url("postgres://agent:s3cr3t@db:notaport/x").unwrap_err();
        assert!(!bad.to_string().contains("s3cr3t"), "{bad}");
    }
}
