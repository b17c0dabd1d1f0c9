//! A real PostgreSQL for tests and benches: a fresh cluster (`initdb`) in a temporary
//! directory, serving on a free loopback port, removed when dropped.
//!
//! As root (CI), every PostgreSQL program runs as the `postgres` user through `su`, since
//! PostgreSQL refuses to run as root. `scripts/test.sh` installs the `postgresql` package.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// A PostgreSQL server of our own, stopped and deleted when dropped.
#[derive(Debug)]
pub struct PgServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    running: bool,
    // fsync and full-page writes on, as in production: for benches.
    durable: bool,
    // More `-c name=value` settings, kept for `start_again`.
    settings: Vec<String>,
}

impl PgServer {
    /// `initdb` a cluster and start it.
    ///
    /// # Panics
    /// If PostgreSQL is not installed or does not start; the message says what to do.
    #[must_use]
    pub fn start() -> Self {
        Self::start_with(false, &[])
    }

    /// As [`start`](Self::start), with `fsync` and `full_page_writes` on, as in
    /// production: for benches whose figures must hold there.
    #[must_use]
    pub fn start_durable() -> Self {
        Self::start_with(true, &[])
    }

    /// As [`start`](Self::start), with these server settings (`("autovacuum_naptime",
    /// "1s")`) on top of the usual ones: for tests that watch the server's own upkeep.
    #[must_use]
    pub fn start_with_settings(settings: &[(&str, &str)]) -> Self {
        Self::start_with(false, settings)
    }

    fn start_with(durable: bool, settings: &[(&str, &str)]) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "monite-webhooks-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the cluster's temporary directory");
        let as_postgres = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let mut server = Self {
            bin: bin_dir(),
            port: free_port(),
            dir,
            as_postgres,
            running: false,
            durable,
            settings: settings
                .iter()
                .map(|(name, value)| format!("-c {name}={value}"))
                .collect(),
        };
        if as_postgres {
            let chown = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&server.dir)
                .status()
                .expect("chown the cluster's directory to postgres");
            assert!(chown.success(), "chown postgres {}", server.dir.display());
        }
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        server.start_again();
        server
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`); committed
    /// transactions survive, as they would a crash.
    pub fn stop(&mut self) {
        if self.running {
            self.running = false;
            let data = self.data_dir();
            self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
        }
    }

    /// Starts the server (again) on the same port and data.
    pub fn start_again(&mut self) {
        let data = self.data_dir();
        let log = self.dir.join("server.log").display().to_string();
        // fsync off: the tests kill processes, not machines, and the OS keeps what was
        // written. Commits still wait for their WAL write, so none is lost to a crash.
        // No Unix socket: its path would have to fit 107 bytes under any $TMPDIR.
        let durability = if self.durable {
            "-c fsync=on -c full_page_writes=on"
        } else {
            "-c fsync=off -c full_page_writes=off"
        };
        let options = format!(
            "-p {} -h 127.0.0.1 -c unix_socket_directories= {durability} -c max_connections=300 {}",
            self.port,
            self.settings.join(" ")
        );
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
            ],
        );
        self.running = true;
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// One of PostgreSQL's programs, run as `postgres` when we are root.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres {
            let line = std::iter::once(program.display().to_string())
                .chain(args.iter().map(|arg| (*arg).to_owned()))
                .map(|word| shell_quote(&word))
                .collect::<Vec<_>>()
                .join(" ");
            let mut su = Command::new("su");
            su.args(["postgres", "-s", "/bin/sh", "-c", &line]);
            su
        } else {
            let mut direct = Command::new(program);
            direct.args(args);
            direct
        }
    }

    /// Runs one of PostgreSQL's programs to the end; panics with its output and the server
    /// log if it fails.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let output = self
            .command(program, args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        if !output.status.success() {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            panic!(
                "{program} {args:?} failed: {}\n{}\n{}\nserver log:\n{log}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
            );
        }
        output
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            let data = self.data_dir();
            let _ = self
                .command("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where `initdb` and `pg_ctl` are: Debian keeps them off `PATH`, in
/// `/usr/lib/postgresql/<version>/bin`; elsewhere, `pg_config --bindir`.
fn bin_dir() -> PathBuf {
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .max();
    if let Some((_, bin)) = debian {
        return bin;
    }
    let pg_config = Command::new("pg_config").arg("--bindir").output();
    match pg_config {
        Ok(out) if out.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
        _ => panic!(
            "PostgreSQL is not installed: the postgres tests need initdb and pg_ctl; \
             `apt-get install postgresql` (scripts/test.sh does this)"
        ),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}
