//! The README's walk-through, run as written: a reader who copies its ```sh blocks into a
//! shell must get what its `# …` comments show.
//!
//! The first block of the section starts the server (in the background, in a fresh directory,
//! on 127.0.0.1:8008 as written); the others run in order in one `bash` with `set -euo
//! pipefail`, sharing variables as a reader's shell would. The only change is that `cargo run
//! --release --` becomes the binary this test run already built, so no release build starts.
//!
//! Every whole-line `#` comment is the expected output of the commands above it (`…` matches
//! anything); commands followed by no comment must print nothing.

#![allow(clippy::unwrap_used)]

use std::{
    fs::File,
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_myelin");
const SECTION: &str = "## Walk-through with curl";
const PORT: u16 = 8008;
const MARKER: &str = "<<<myelin-readme-step>>>";

/// Commands and the output the README shows for them.
#[derive(Debug)]
struct Step {
    commands: String,
    expected: String,
}

/// The walk-through's ```sh blocks, in order.
fn walk_through_blocks(readme: &str) -> Vec<String> {
    let start = readme
        .find(SECTION)
        .unwrap_or_else(|| panic!("README.md has no `{SECTION}` section"));
    let section = &readme[start + SECTION.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), line) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "unterminated ```sh block in {SECTION}");
    blocks
}

fn as_built(block: &str) -> String {
    block.replace("cargo run --release --", &format!("'{BIN}'"))
}

fn steps(block: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_output = false;
    for line in block.lines() {
        if let Some(comment) = line.strip_prefix('#') {
            let Some(step) = steps.last_mut() else {
                panic!("a ```sh block starts with a comment: {line}")
            };
            if in_output {
                step.expected.push('\n');
            }
            step.expected
                .push_str(comment.strip_prefix(' ').unwrap_or(comment));
            in_output = true;
        } else {
            if in_output || steps.is_empty() {
                steps.push(Step {
                    commands: String::new(),
                    expected: String::new(),
                });
                in_output = false;
            }
            let step = steps.last_mut().unwrap();
            step.commands.push_str(line);
            step.commands.push('\n');
        }
    }
    steps
}

/// `pattern` with each `…` standing for any text (newlines included).
fn matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('…').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == text;
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

fn require_tools() {
    for tool in ["bash", "curl", "jq"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "the README walk-through needs {tool}, which is not installed: install curl and jq \
             (e.g. `apt-get install -y curl jq`) to run this test"
        );
    }
}

/// A shell in `dir` without the caller's `MYELIN_*` settings, so the README's defaults apply.
fn bash(dir: &Path, script: &str, log: &Path) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(File::create(log.with_extension("out")).unwrap())
        .stderr(File::create(log.with_extension("err")).unwrap());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MYELIN_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The server started by the README's first block; stopped (its whole process group) on drop.
struct Server {
    child: Child,
    log: std::path::PathBuf,
}

impl Server {
    fn log(&self) -> String {
        format!(
            "{}{}",
            read(&self.log.with_extension("out")),
            read(&self.log.with_extension("err"))
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        for signal in ["-TERM", "-KILL"] {
            let _ = Command::new("kill").args([signal, "--", &group]).status();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn start_server(dir: &Path, block: &str) -> Server {
    if let Err(err) = TcpListener::bind(("127.0.0.1", PORT)) {
        panic!(
            "127.0.0.1:{PORT} is taken ({err}): this test starts the server as the README says, \
             on port {PORT}; stop whatever listens there and run it again"
        );
    }
    let log = dir.join("server.log");
    let child = {
        use std::os::unix::process::CommandExt;
        bash(dir, &as_built(block), &log)
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let mut server = Server { child, log };
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", PORT)).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("the README's server exited ({status}):\n{}", server.log());
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the README's server did not listen on {PORT} within 30 s:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// Runs the steps in one shell and returns what each printed.
fn run_steps(dir: &Path, steps: &[Step], server: &Server) -> Vec<String> {
    let mut script = String::new();
    for step in steps {
        script.push_str(&as_built(&step.commands));
        script.push_str(&format!("printf '\\n%s\\n' '{MARKER}'\n"));
    }
    let log = dir.join("walk-through.log");
    let mut child = bash(dir, &script, &log).spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the walk-through did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = read(&log.with_extension("out"));
    let outputs: Vec<String> = stdout
        .split(MARKER)
        .map(|out| out.trim_matches('\n').to_owned())
        .collect();
    if !status.success() {
        let failed = &steps[outputs.len() - 1];
        panic!(
            "the walk-through failed ({status}) at\n{}\nstdout:\n{stdout}\nstderr:\n{}\nserver:\n{}",
            failed.commands,
            read(&log.with_extension("err")),
            server.log()
        );
    }
    outputs
}

/// What the one step whose commands contain all of `needles` printed.
fn output_of<'a>(steps: &[Step], outputs: &'a [String], needles: &[&str]) -> &'a str {
    let found: Vec<usize> = (0..steps.len())
        .filter(|&i| needles.iter().all(|n| steps[i].commands.contains(n)))
        .collect();
    match found.as_slice() {
        [i] => &outputs[*i],
        _ => panic!(
            "expected exactly one walk-through step with {needles:?}, found {}",
            found.len()
        ),
    }
}

fn json(output: &str) -> Value {
    serde_json::from_str(output).unwrap_or_else(|_| panic!("not JSON: {output}"))
}

#[test]
fn readme_walk_through_runs_as_written() {
    require_tools();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let blocks = walk_through_blocks(&readme);
    let (serve, rest) = blocks
        .split_first()
        .expect("the walk-through has no ```sh block");
    assert!(
        serve.contains(" serve"),
        "the first block must start the server: {serve}"
    );
    let steps: Vec<Step> = rest.iter().flat_map(|block| steps(block)).collect();

    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), serve);
    let outputs = run_steps(dir.path(), &steps, &server);
    drop(server);

    for (step, output) in steps.iter().zip(&outputs) {
        assert!(
            matches(&step.expected, output),
            "the README shows\n{}\nafter\n{}but the output was\n{output}",
            step.expected,
            step.commands
        );
    }

    // What the walk-through must keep demonstrating, whatever its comments say.
    let registered = json(output_of(&steps, &outputs, &["m.login.dummy"]));
    assert!(
        registered["access_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("myl_")),
        "{registered}"
    );
    assert_eq!(registered["user_id"], "@alice:localhost");
    let whoami = json(output_of(&steps, &outputs, &["/login", "/account/whoami"]));
    assert_eq!(whoami["user_id"], "@alice:localhost");
    assert_eq!(
        output_of(&steps, &outputs, &["-XPUT", "account_data/m.direct"]),
        "{}"
    );
    let initial = json(output_of(&steps, &outputs, &["# initial sync"]));
    assert_eq!(
        initial["account_data"]["events"][0],
        serde_json::json!({"type": "m.direct", "content": {"@bob:localhost": ["!room:localhost"]}})
    );
    let long_poll = json(output_of(&steps, &outputs, &["since=$NEXT&timeout"]));
    assert!(long_poll["next_batch"].is_string(), "{long_poll}");
    let sent = json(output_of(&steps, &outputs, &["createRoom", "/send/"]));
    assert!(
        sent["event_id"]
            .as_str()
            .is_some_and(|e| e.starts_with('$')),
        "{sent}"
    );
    let timeline = json(output_of(&steps, &outputs, &["timeline.events"]));
    assert_eq!(
        timeline.as_array().and_then(|t| t.last()),
        Some(&serde_json::json!("m.room.message"))
    );
    let logged_out = output_of(&steps, &outputs, &["/logout"]);
    let after = steps
        .iter()
        .position(|s| s.commands.contains("/logout"))
        .unwrap();
    assert_eq!(logged_out, "{}");
    assert_eq!(json(&outputs[after + 1])["errcode"], "M_UNKNOWN_TOKEN");
    assert_eq!(
        output_of(&steps, &outputs, &["user create @bob"]),
        "created @bob:localhost"
    );
    assert!(output_of(&steps, &outputs, &["-- --help"]).contains("Usage: myelin <COMMAND>"));
}

#[test]
fn expected_output_patterns() {
    assert!(matches("{}", "{}"));
    assert!(!matches("{}", "{} "));
    assert!(matches("a…", "abc"));
    assert!(matches("…c", "abc"));
    assert!(matches("a…c…e", "abcde"));
    assert!(matches("a…\n…e", "ab\ncde"));
    assert!(!matches("a…c", "ab"));
    assert!(!matches("ab…bc", "abc"));
}
