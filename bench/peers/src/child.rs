//! One system and n per child process, so that its CPU time and peak RSS
//! are its own.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::result::RunResult;
use crate::scenario;
use crate::spec::{Spec, System};
use crate::systems::chitchat::ChitchatCluster;
use crate::systems::foca::FocaCluster;
use crate::systems::rumour::RumourCluster;

/// In the child: run `spec` and print its result as one JSON line.
pub fn run_here(spec_json: &str) -> anyhow::Result<()> {
    let spec: Spec = serde_json::from_str(spec_json)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        match spec.system {
            System::Rumour => scenario::run::<RumourCluster>(&spec).await,
            System::Chitchat => scenario::run::<ChitchatCluster>(&spec).await,
            System::Foca => scenario::run::<FocaCluster>(&spec).await,
        }
    })?;
    println!("{}", serde_json::to_string(&result)?);
    // Nodes are not shut down gracefully: the process ends here.
    rt.shutdown_background();
    Ok(())
}

/// In the parent: run `spec` in a child process of this binary, killed if
/// it overruns its budget.
pub fn run_child(spec: &Spec) -> Result<RunResult, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let json = serde_json::to_string(spec).map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .arg("--run-one")
        .arg(json)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the child: {e}"))?;
    let deadline = Instant::now() + spec.timings.budget();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("timed out".to_string());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out).map_err(|e| e.to_string())?;
    }
    if !status.success() {
        return Err(format!("child exited with {status}"));
    }
    let line = out.lines().last().ok_or("child printed nothing")?;
    serde_json::from_str(line).map_err(|e| format!("bad child output: {e}"))
}
