//! The BENCHMARKS.md table: rows keyed by their id; a write replaces the rows it measured
//! and the machine block, and keeps everything else.

use std::path::Path;

use anyhow::Result;

use crate::util::Provenance;

#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub what: String,
    pub goal: String,
    pub result: String,
    pub runs: String,
    pub reference: String,
    pub ratio: String,
    pub command: String,
    pub missed: bool,
    pub pending: bool,
}

const HEADER: &str = "| id | what | goal | result (median) | runs | reference | ratio to reference | measured | command |\n\
| --- | --- | --- | --- | --- | --- | --- | --- | --- |";
const MACHINE_START: &str = "<!-- bench:machine -->";
const MACHINE_END: &str = "<!-- /bench:machine -->";

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn render(r: &Row, measured: &str) -> String {
    let result = if r.missed { format!("**{}** (goal missed)", r.result) } else { r.result.clone() };
    let measured = if r.pending { "—" } else { measured };
    format!(
        "| `{}` | {} | {} | {} | {} | {} | {} | {} | `{}` |",
        r.id,
        cell(&r.what),
        cell(&r.goal),
        cell(&result),
        cell(&r.runs),
        cell(&r.reference),
        cell(&r.ratio),
        measured,
        r.command
    )
}

pub fn render_rows(rows: &[Row]) -> String {
    let mut s = String::from(HEADER);
    for r in rows {
        s.push('\n');
        s.push_str(&render(r, "now"));
    }
    s
}

fn id_of(line: &str) -> Option<&str> {
    line.strip_prefix("| `")?.split('`').next()
}

fn template() -> String {
    format!(
        "# Benchmarks\n\n\
         Measured by `bangban-bench` (crate `bench/`): it starts the real release binaries and drives\n\
         them over loopback (127.0.0.1) from one process. Each row gives the median of its runs, the\n\
         reference it is compared with (measured in the same run where possible), the ratio result ÷\n\
         reference and the command that reproduces it. The server, the reference and the load\n\
         generator share the machine's cores. `bangban-bench all --short` is the CI smoke test: small\n\
         numbers, fails on errors, never on timings.\n\n\
         {MACHINE_START}\n{MACHINE_END}\n\n{HEADER}\n"
    )
}

/// Rewrites `path`: the machine block, and the rows in `rows` (replaced in place or appended
/// to the table); every other line is kept.
pub fn write(path: &Path, rows: &[Row], p: &Provenance) -> Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| template());
    let text =
        if text.contains(HEADER.lines().next().unwrap_or_default()) { text } else { template() + &text };
    let measured = format!("{}, `{}`", p.date.split(' ').next().unwrap_or_default(), p.commit);
    let machine = format!(
        "{MACHINE_START}\nLast written {} at commit `{}` on {} × {} ({} CPUs as seen by `nproc`), {} GiB RAM, {}.\n{MACHINE_END}",
        p.date,
        p.commit,
        p.cpus,
        p.model,
        p.cpus,
        p.mem_gib,
        std::fs::read_to_string("/etc/debian_version")
            .map(|v| format!("Debian {}", v.trim()))
            .unwrap_or_default()
    );
    let mut out: Vec<String> = Vec::new();
    let mut written: Vec<&str> = Vec::new();
    let mut in_machine = false;
    let mut in_table = false;
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() == MACHINE_START {
            in_machine = true;
            out.push(machine.clone());
            continue;
        }
        if in_machine {
            in_machine = line.trim() != MACHINE_END;
            continue;
        }
        if line.starts_with("| id | what |") {
            in_table = true;
        }
        if in_table
            && let Some(id) = id_of(line)
            && let Some(r) = rows.iter().find(|r| r.id == id)
        {
            out.push(render(r, &measured));
            written.push(&r.id);
        } else {
            out.push((*line).to_owned());
        }
        let table_ends = in_table && lines.get(i + 1).is_none_or(|n| !n.starts_with('|'));
        if table_ends {
            in_table = false;
            for r in rows.iter().filter(|r| !written.contains(&r.id.as_str())) {
                out.push(render(r, &measured));
            }
            written.extend(rows.iter().map(|r| r.id.as_str()));
        }
    }
    std::fs::write(path, out.join("\n") + "\n")?;
    Ok(())
}
