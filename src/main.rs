//! The `myelin` command line.

use std::{io::Read, path::PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use myelin_core::config::LogConfig;

mod run;

use run::{init_tracing, serve};

/// jemalloc, with a background thread that returns freed memory to the system within a second
/// (see `.cargo/config.toml`). With the system allocator, the 19 MiB argon2id working areas of
/// password checks stayed resident, one per thread that ever ran a check: 3.5 GiB after a few
/// hundred logins in the benchmark.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "myelin", version, about = "Myelin, a Matrix homeserver")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the homeserver. Without --config it uses the defaults: server_name `localhost`,
    /// listening on 127.0.0.1:8008, data in ./myelin-data/. MYELIN_* environment variables
    /// override any key (MYELIN_SERVER_NAME, MYELIN_DATABASE__URL, ...).
    Serve {
        /// TOML configuration file.
        #[arg(long, short, env = "MYELIN_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Manage users without going through HTTP.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Database maintenance.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Ask a running server whether it is ready (its database answers): exit status 0 if so,
    /// 1 if not. For container health checks in images without curl.
    Healthcheck {
        /// TOML configuration file (for the address the server listens on).
        #[arg(long, short, env = "MYELIN_CONFIG")]
        config: Option<PathBuf>,
        /// The server's base URL, instead of the configured `listen` address.
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Copy a whole deployment (users, devices, tokens, account data, filters, rooms and
    /// their events, the signing key) into an empty database, e.g. from the embedded SQLite
    /// to PostgreSQL. Stop the server first.
    Copy {
        /// Source database URL, e.g. sqlite://myelin-data/myelin.db
        #[arg(long)]
        from: String,
        /// Target database URL (must hold no users), e.g. postgres://myelin@localhost/myelin
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user with a password (works while registration is closed).
    Create {
        /// The full user ID, e.g. @alice:localhost.
        user_id: String,
        /// Read the password from this file (first line); without it, from standard input.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Make the user a server admin (allowed to call `/_synapse/admin`).
        #[arg(long)]
        admin: bool,
        /// TOML configuration file (for server_name and the database).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Grant (or with --revoke, take away) the server-admin flag of an existing user.
    SetAdmin {
        /// The full user ID, e.g. @alice:localhost.
        user_id: String,
        #[arg(long)]
        revoke: bool,
        /// TOML configuration file (for server_name and the database).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // `serve` logs as its configuration says, so it sets logging up once that is read.
    if !matches!(cli.command, Command::Serve { .. }) {
        init_tracing(&LogConfig::default());
    }
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // One readable line (with causes), not a debug dump with a backtrace.
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The runtime is built by hand because `workers` comes from the configuration.
fn runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(workers) = workers {
        builder.worker_threads(workers);
    }
    builder.build().context("starting the runtime")
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config: file } => {
            let loaded = myelin::load_config_noting(file.as_deref());
            let log = loaded
                .as_ref()
                .map(|(c, _)| c.log.clone())
                .unwrap_or_default();
            let filter = init_tracing(&log);
            let (config, notes) = loaded?;
            for note in notes {
                tracing::warn!("{note}");
            }
            runtime(config.workers)?.block_on(serve(config, file, filter))
        }
        Command::User {
            command:
                UserCommand::Create {
                    user_id,
                    password_file,
                    admin,
                    config,
                },
        } => runtime(None)?.block_on(create_user(&user_id, password_file, admin, config)),
        Command::User {
            command:
                UserCommand::SetAdmin {
                    user_id,
                    revoke,
                    config,
                },
        } => runtime(None)?.block_on(set_admin(&user_id, !revoke, config)),
        Command::Db {
            command: DbCommand::Copy { from, to },
        } => runtime(None)?.block_on(copy_database(from, to)),
        Command::Healthcheck { config, url } => {
            runtime(Some(1))?.block_on(healthcheck(config, url))
        }
    }
}

async fn create_user(
    user_id: &str,
    password_file: Option<PathBuf>,
    admin: bool,
    config: Option<PathBuf>,
) -> anyhow::Result<()> {
    let config = myelin::load_config(config.as_deref())?;
    let password = match password_file {
        Some(path) => {
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
        }
        None => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input)?;
            input
        }
    };
    let password = password.lines().next().unwrap_or("").to_owned();
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    let store = myelin::open_store(&config).await?;
    let services = myelin_core::Services::start(config, store.clone())
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let created = async {
        let user_id = myelin_core::accounts::create_user(&services, user_id, password).await?;
        if admin {
            myelin_core::admin::set_admin_flag(&services, &user_id, true).await?;
        }
        Ok::<_, myelin_core::Error>(user_id)
    }
    .await
    .map_err(|e| anyhow::anyhow!("cannot create {user_id}: {e}"));
    store.close().await;
    let role = if admin { " (server admin)" } else { "" };
    println!("created {}{role}", created?);
    Ok(())
}

async fn set_admin(user_id: &str, admin: bool, config: Option<PathBuf>) -> anyhow::Result<()> {
    let config = myelin::load_config(config.as_deref())?;
    let store = myelin::open_store(&config).await?;
    let services = myelin_core::Services::start(config, store.clone())
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let done = myelin_core::admin::set_admin_flag(&services, user_id, admin)
        .await
        .map_err(|e| anyhow::anyhow!("cannot change {user_id}: {e}"));
    store.close().await;
    done?;
    let now = if admin { "is now" } else { "is no longer" };
    println!("{user_id} {now} a server admin");
    Ok(())
}

async fn healthcheck(config: Option<PathBuf>, url: Option<String>) -> anyhow::Result<()> {
    let base = match url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let config = myelin::load_config(config.as_deref())?;
            let mut addr = config.listen_addr()?;
            // A server listening on every address answers on loopback.
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        }
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    let resp = client
        .get(format!("{base}/_myelin/ready"))
        .send()
        .await
        .with_context(|| format!("{base} does not answer"))?;
    let status = resp.status();
    anyhow::ensure!(status.is_success(), "{base} is not ready ({status})");
    println!("{base} is ready");
    Ok(())
}

async fn copy_database(from: String, to: String) -> anyhow::Result<()> {
    let database = |url: String| {
        let mut config = myelin_core::config::Config::default();
        config.database.url = url;
        config.validate().map(|()| config)
    };
    let from = database(from).context("the source")?;
    let to = database(to).context("the target")?;
    // Opening a SQLite path creates it: a mistyped source would otherwise be copied as an
    // empty deployment and reported as a success.
    if let myelin_core::config::Backend::Sqlite(path) = from.database_backend()? {
        anyhow::ensure!(
            path.exists(),
            "the source database {} does not exist",
            path.display()
        );
    }
    let source = myelin::open_store(&from)
        .await
        .context("opening the source")?;
    let target = myelin::open_store(&to)
        .await
        .context("opening the target")?;
    // Progress goes to standard error as each phase ends; the summary to standard output.
    eprintln!("reading the source...");
    let started = std::time::Instant::now();
    let dump = source.export().await.context("reading the source")?;
    let counts = dump.counts();
    let rows: usize = counts.iter().map(|(_, n)| n).sum();
    let read_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "read {rows} rows in {read_secs:.1} s ({:.0} rows/s)",
        rows as f64 / read_secs.max(0.001)
    );
    for (table, n) in counts.iter().filter(|(_, n)| *n > 0) {
        eprintln!("  {table}: {n}");
    }
    let summary = format!(
        "{} users, {} devices, {} access tokens, {} account-data entries, {} filters, \
         {} rooms, {} events",
        dump.users.len(),
        dump.devices.len(),
        dump.access_tokens.len(),
        dump.account_data.len(),
        dump.filters.len(),
        dump.rooms.rooms.len(),
        dump.rooms.events.len()
    );
    eprintln!("writing the target in one transaction...");
    let started = std::time::Instant::now();
    let imported = target.import(dump).await.context("writing the target");
    source.close().await;
    target.close().await;
    imported?;
    let write_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "wrote {rows} rows in {write_secs:.1} s ({:.0} rows/s)",
        rows as f64 / write_secs.max(0.001)
    );
    println!("copied {summary}");
    Ok(())
}

/// The database URL as it may appear in a log: without the password, whether in the user
/// information (`postgres://user:secret@host/db`) or in libpq's `?password=` parameter. The URL
/// is parsed rather than split, since a password may itself hold `@`, `:` or `/`.
fn without_password(url: &str) -> String {
    // A SQLite URL is a path: it holds no credentials, and is shown exactly as configured.
    if url.starts_with("sqlite://") {
        return url.to_owned();
    }
    let Ok(mut parsed) = url::Url::parse(url) else {
        // Where a password would end in an unparsable URL cannot be known: show none of it.
        let scheme = url.split(':').next().unwrap_or("");
        return format!("{scheme}://(not shown: not a valid URL)");
    };
    let in_query = parsed.query_pairs().any(|(key, _)| key == "password");
    if parsed.password().is_none() && !in_query {
        return url.to_owned();
    }
    if parsed.set_password(None).is_err() {
        return format!("{}://(not shown)", parsed.scheme());
    }
    if in_query {
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(key, _)| key != "password")
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    parsed.into()
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn passwords_stay_out_of_the_start_up_line() {
        assert_eq!(
            without_password("postgres://me:s3cret@db:5432/myelin"),
            "postgres://me@db:5432/myelin"
        );
        assert_eq!(
            without_password("postgres://me@db/myelin"),
            "postgres://me@db/myelin"
        );
        assert_eq!(
            without_password("sqlite://myelin-data/myelin.db"),
            "sqlite://myelin-data/myelin.db"
        );
    }

    #[test]
    fn passwords_with_url_delimiters_stay_out_of_the_start_up_line() {
        // As written in a configuration file, unescaped: the authority ends at the last `@`.
        assert_eq!(
            without_password("postgres://me:p@ss@db/myelin"),
            "postgres://me@db/myelin"
        );
        // Escaped, as libpq and sqlx expect.
        assert_eq!(
            without_password("postgres://me:p%40ss%2Fw%3Ard@db:5432/myelin"),
            "postgres://me@db:5432/myelin"
        );
        // An unescaped `/` ends the authority early: the URL does not parse, so none of it
        // after the scheme is shown.
        let shown = without_password("postgres://me:pa/ss@db/myelin");
        assert!(!shown.contains("pa") && !shown.contains("ss"), "{shown}");
        // libpq's `?password=` query parameter.
        assert_eq!(
            without_password("postgres://me@db/myelin?sslmode=require&password=s3cret"),
            "postgres://me@db/myelin?sslmode=require"
        );
        assert_eq!(
            without_password("postgresql://me@db/myelin?application_name=x"),
            "postgresql://me@db/myelin?application_name=x"
        );
    }
}
