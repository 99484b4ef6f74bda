//! `bglass canary`: prove every pathway ready (see `bglass_drill::canary`), and say so where
//! operators look: a table or JSON on stdout, a Prometheus textfile for node_exporter, a
//! webhook when a pathway breaks or recovers, and the exit code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bglass_drill::canary::{Pathway, round};

use super::block_on;
use crate::client::Session;
use crate::cmd::audit::Webhook;
use crate::error::{CliError, CliResult, ErrorKind};

/// `bglass canary`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Run it from a timer on a host outside production, enrolled with the canary role (a roster
entry with roles = [\"canary\"]): for every proxy of its config and every tool of each
catalog it gets a canary grant (no approvals; good for that tool's probe only) and probes
the tool through the proxy. A broken pathway is named with the step that failed: pin,
roster, proxy, grant, injection, upstream or login. Exit 0 when every pathway works, 5 when
one is broken.")]
pub struct CanaryArgs {
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the results as a Prometheus textfile (for node_exporter's textfile collector),
    /// replaced atomically.
    #[arg(long, value_name = "FILE")]
    pub textfile: Option<PathBuf>,
    /// POST a JSON message when a pathway breaks or recovers: http://IP:PORT/path.
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// The login on SSH hosts [default: the certificate's first principal].
    #[arg(long, value_name = "USER")]
    pub ssh_user: Option<String>,
}

/// What the last run found, by pathway (`state/canary.json` beside the config).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Last {
    pathways: BTreeMap<String, Pathway>,
}

fn state_path(config: &Path) -> PathBuf {
    config
        .parent()
        .unwrap_or(Path::new("."))
        .join("state")
        .join("canary.json")
}

fn write_atomic(path: &Path, bytes: &[u8]) -> CliResult {
    let fail = |e: std::io::Error| CliError::user(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', " ")
}

/// The Prometheus text of a run.
fn textfile(pathways: &[Pathway], now_s: u64) -> String {
    let mut out = String::from(
        "# HELP bglass_canary_ok 1 when the pathway to a tool through a proxy works end to end (step names where it broke).\n# TYPE bglass_canary_ok gauge\n",
    );
    for p in pathways {
        out.push_str(&format!(
            "bglass_canary_ok{{proxy=\"{}\",service=\"{}\",step=\"{}\"}} {}\n",
            label(p.proxy_id.as_deref().unwrap_or(&p.proxy)),
            label(p.service.as_deref().unwrap_or("")),
            label(p.step.as_deref().unwrap_or("")),
            u8::from(p.ok)
        ));
    }
    out.push_str(&format!(
        "# HELP bglass_canary_last_run_timestamp_seconds When bglass canary last ran.\n# TYPE bglass_canary_last_run_timestamp_seconds gauge\nbglass_canary_last_run_timestamp_seconds {now_s}\n"
    ));
    out
}

fn line(p: &Pathway) -> String {
    let what = match (&p.proxy_id, &p.service) {
        (_, Some(_)) => format!("{} ({})", p.key(), p.kind.as_deref().unwrap_or("?")),
        (_, None) => p.proxy.clone(),
    };
    if p.ok {
        format!("ok      {what}")
    } else {
        format!(
            "BROKEN  {what} at {}: {}",
            p.step.as_deref().unwrap_or("?"),
            p.detail
        )
    }
}

/// Runs `bglass canary`.
pub fn run(config_flag: Option<&Path>, args: &CanaryArgs) -> CliResult {
    let webhook = args.webhook.as_deref().map(Webhook::new).transpose()?;
    let location = crate::config::locate(config_flag)?;
    let state = state_path(&location.path);
    let last: Last = std::fs::read(&state)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut session = Session::open(config_flag)?;
    session.silence();
    let pathways = block_on(async {
        let found = round(&mut session, args.ssh_user.as_deref()).await;
        // Breaks and recoveries since the last run, to the webhook.
        if let Some(hook) = &webhook {
            for p in &found {
                let before = last.pathways.get(&p.key()).map(|l| l.ok);
                let change = match (before, p.ok) {
                    (Some(true) | None, false) => "broken",
                    (Some(false), true) => "recovered",
                    _ => continue,
                };
                let text = format!("bglass canary: {change}: {}", line(p).trim_start());
                let body = serde_json::json!({ "text": text, "change": change, "pathway": p });
                if let Err(e) = hook.post(&body).await {
                    eprintln!("warning: the webhook could not be told ({e})");
                }
            }
        }
        Ok(found)
    })?;
    let now = bglass_core::timestamp::now_ms() / 1000;
    if let Some(path) = &args.textfile {
        write_atomic(path, textfile(&pathways, now).as_bytes())?;
    }
    let next = Last {
        pathways: pathways.iter().map(|p| (p.key(), p.clone())).collect(),
    };
    let bytes = serde_json::to_vec_pretty(&next).map_err(CliError::internal)?;
    write_atomic(&state, &bytes)?;
    if args.json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&pathways).map_err(CliError::internal)?
        )?;
    } else {
        for p in &pathways {
            crate::outln!("{}", line(p))?;
        }
    }
    let broken = pathways.iter().filter(|p| !p.ok).count();
    if broken > 0 {
        return Err(CliError::new(
            ErrorKind::Defect,
            format!("{broken} of {} pathways are broken", pathways.len()),
        ));
    }
    Ok(())
}
