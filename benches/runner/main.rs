//! The benchmarks of BENCHMARKS.md: is the runner fast, cheap, and does it
//! lose nothing? `cargo bench --bench runner [-- SCENARIO...]` (or `just
//! bench`) runs them; `cargo test` never does (`harness = false`, a program).
//!
//! How: the sandbox (platform + MCP + scripted LLM) runs in THIS process; the
//! runner is the real release binary, `tick --once --force --json`, in a child
//! process, so `wait4` tells its CPU and peak RSS apart from the sandbox's.
//! Per-persona durations and waits come from the runner's own ledger; what
//! the LLM would bill comes from the sandbox's `llm_requests`. Every run also
//! checks that every row the runner reports reached the sandbox's database.
//!
//! Scenarios: occupancy, overhead, memory, startup, cost, scaling, report
//! (all by default), and memory-2048 (only when named). Results: `benches/results/*.json` and `scaling.svg`; `chart`
//! redraws the SVG from `scaling.json`.
//! `--keep` keeps the work directory (sandbox and state databases);
//! `--out=DIR` writes the results there instead (relative to the crate);
//! `MANA_PERSONAS_BIN=PATH` measures another build of the binary;
//! `--wrap='perf record -F 997 -g -o {dir}/perf.data --'` runs the binary
//! under a profiler (`{dir}`: the scenario's work directory), keeps the work
//! directory and writes no results (profiling runs measure the profiler too).

mod chart;
mod child;
mod cost;
mod fixture;
mod ledger;
mod report;
mod startup;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use fixture::{Fixture, UNIFORM, World};

const SCENARIOS: &[&str] = &[
    "occupancy",
    "overhead",
    "memory",
    "memory-2048",
    "startup",
    "cost",
    "scaling",
    "report",
];

/// Not a measurement: redraws scaling.svg from scaling.json.
const CHART: &str = "chart";

/// Runs of the occupancy and overhead scenarios; the median is reported.
const REPEATS: usize = 5;

/// Concurrency levels of the scaling run; personas per level: max(32, 4C).
const SCALING: &[usize] = &[1, 8, 64, 256];

/// Shared by every scenario.
struct Ctx {
    bin: PathBuf,
    work: PathBuf,
    template: PathBuf,
    results: PathBuf,
    cores: usize,
    /// `--wrap=CMD`: a profiler to run the binary under (profiling, not measuring).
    wrap: Vec<String>,
}

/// One measured `tick --once`.
struct Measured {
    fixture: Fixture,
    child: child::ChildRun,
    ticks: Vec<ledger::PersonaTick>,
    sandbox_cpu: Duration,
    report: Value,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Starts a sandbox for `w`, runs the binary at `concurrency`, measures it,
/// and checks that nothing was lost on the way to the sandbox's tables.
async fn tick_run(ctx: &Ctx, name: &str, w: World, concurrency: usize) -> anyhow::Result<Measured> {
    let dir = ctx.work.join(name);
    let fixture = fixture::start(&ctx.template, &dir, &w).await?;
    let home = dir.join("home");
    std::fs::create_dir_all(&home)?;
    let wrap: Vec<String> = ctx
        .wrap
        .iter()
        .map(|a| a.replace("{dir}", &dir.display().to_string()))
        .collect();
    let cmd = child::tick_command(&ctx.bin, &fixture.sb.url(), &home, concurrency, &wrap);
    let load = machine_load();
    let stat0 = cpu_jiffies();
    let cpu0 = child::self_cpu();
    let run = tokio::task::spawn_blocking(move || child::run(cmd)).await??;
    let sandbox_cpu = child::self_cpu().saturating_sub(cpu0);
    let stat1 = cpu_jiffies();
    anyhow::ensure!(
        run.exit_code == 0,
        "{name}: tick exited {}:\n{}",
        run.exit_code,
        run.stderr
    );
    let summary: Value = serde_json::from_str(run.stdout.trim())
        .with_context(|| format!("{name}: stdout is not the JSON summary: {}", run.stdout))?;
    let ticks = ledger::read(&home.join("state").join("state.db"))?;

    let n = |k: &str| summary[k].as_u64().unwrap_or(0);
    let db = fixture.sb.db();
    let db_actions = db.count("SELECT COUNT(*) FROM persona_actions") as u64;
    let db_feedback = db.count("SELECT COUNT(*) FROM persona_feedback") as u64;
    let still_due = db.count("SELECT COUNT(*) FROM personas WHERE last_active_at IS NULL") as u64;
    let failed = summary["failed"].as_array().map_or(0, Vec::len);
    let lost = n("actions").abs_diff(db_actions) + n("ratings").abs_diff(db_feedback);
    anyhow::ensure!(
        n("ran") as usize == w.personas
            && failed == 0
            && lost == 0
            && n("outboxPending") == 0
            && still_due == 0
            && ticks.len() == w.personas,
        "{name}: ran {} of {} personas, {failed} failed, {lost} rows lost, {} batches pending, {still_due} still due, {} ledger entries:\n{}",
        n("ran"),
        w.personas,
        n("outboxPending"),
        ticks.len(),
        run.stderr
    );

    let ran = n("ran") as f64;
    let tick_ms = n("durationMs") as f64;
    let wall_ms = ms(run.wall);
    let stats = ledger::stats(&ticks);
    let sum_d = stats["sumDurationMs"].as_f64().unwrap_or(0.0);
    let c = concurrency as f64;
    let report = json!({
        "personas": w.personas,
        "concurrency": concurrency,
        "llmLatencyMs": w.llm_latency_ms,
        "day": if w.directive.is_empty() { "scripted model's own (the calls the prompt asks for, parallel, invalid args)".to_string() } else { w.directive.to_string() },
        "levers": child::levers().into_iter().map(|(k, v)| (k.to_string(), Value::from(v))).collect::<serde_json::Map<_, _>>(),
        "processWallMs": wall_ms,
        "tickMs": tick_ms,
        "personaTicksPerSecond": {"process": ran / wall_ms * 1000.0, "tick": ran / tick_ms.max(1.0) * 1000.0},
        "slotOccupancy": {"process": sum_d / (c * wall_ms), "tick": sum_d / (c * tick_ms.max(1.0))},
        "runnerCpuMs": {"user": ms(run.user), "sys": ms(run.sys), "total": ms(run.cpu()),
                         "perPersonaTick": ms(run.cpu()) / ran.max(1.0)},
        "sandboxCpuMs": ms(sandbox_cpu),
        // The tick runs on one thread: its busy share says how close the
        // runner itself is to being the limit.
        "runnerThreadBusy": ms(run.cpu()) / wall_ms,
        "cpuBusyShare": {"runner": ms(run.cpu()) / (wall_ms * ctx.cores as f64),
                          "sandbox": ms(sandbox_cpu) / (wall_ms * ctx.cores as f64),
                          "total": (ms(run.cpu()) + ms(sandbox_cpu)) / (wall_ms * ctx.cores as f64),
                          // Everything on the machine, other users included (/proc/stat).
                          "machine": busy_share(stat0, stat1)},
        "runnerPeakRssKiB": run.peak_rss_kib,
        "rusageMaxrssKiB(notTheRunner'sPeak)": run.rusage_maxrss_kib,
        "ledger": stats,
        "idleSlots": ledger::idle(&ticks, concurrency, tick_ms),
        "machineLoadBefore": load,
        "data": {"actionsReported": n("actions"), "actionRowsStored": db_actions,
                  "ratingsReported": n("ratings"), "feedbackRowsStored": db_feedback,
                  "outboxPending": n("outboxPending"), "personasStillDue": still_due, "rowsLost": lost},
        "summary": {"due": n("due"), "ran": n("ran"), "ok": n("ok"), "failed": failed,
                     "actions": n("actions"), "actionErrors": n("actionErrors"), "tokens": summary["tokens"]},
    });
    Ok(Measured {
        fixture,
        child: run,
        ticks,
        sandbox_cpu,
        report,
    })
}

/// `(busy, total)` jiffies of all CPUs from /proc/stat.
fn cpu_jiffies() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn busy_share(a: (u64, u64), b: (u64, u64)) -> f64 {
    (b.0 - a.0) as f64 / (b.1 - a.1).max(1) as f64
}

/// Others share this machine: the 1-minute load and the CPU pressure just
/// before a run say how quiet it was.
fn machine_load() -> Value {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let psi = std::fs::read_to_string("/proc/pressure/cpu").unwrap_or_default();
    let some10 = psi
        .lines()
        .find(|l| l.starts_with("some"))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|kv| kv.strip_prefix("avg10="))
        })
        .and_then(|v| v.parse::<f64>().ok());
    json!({
        "loadavg1": loadavg.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()),
        "cpuPressureSomeAvg10": some10,
    })
}

/// Runs `once` `REPEATS` times; the run with the median of `key` is the
/// result, every run's headline numbers are kept beside it.
async fn repeated<F, Fut>(key: &[&str], once: F) -> anyhow::Result<Value>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Value>>,
{
    let mut runs = Vec::new();
    for i in 0..REPEATS {
        runs.push(once(i).await?);
    }
    let at = |v: &Value| {
        key.iter()
            .fold(v, |v, k| &v[*k])
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    runs.sort_by(|a, b| at(a).total_cmp(&at(b)));
    let headline: Vec<Value> = runs
        .iter()
        .map(|r| {
            json!({
                "slotOccupancyTick": r["slotOccupancy"]["tick"],
                "slotOccupancyProcess": r["slotOccupancy"]["process"],
                "personaTicksPerSecond": r["personaTicksPerSecond"]["tick"],
                "runnerShare": r["ledger"]["runnerShare"],
                "runnerCpuMsPerPersonaTick": r["runnerCpuMs"]["perPersonaTick"],
                "machineLoadBefore": r["machineLoadBefore"],
            })
        })
        .collect();
    let mut median = runs.swap_remove(runs.len() / 2);
    median["repeats"] = json!({"by": key.join("."), "runs": headline});
    Ok(median)
}

fn write_json(ctx: &Ctx, name: &str, v: &Value) -> anyhow::Result<()> {
    let path = ctx.results.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(v)? + "\n")?;
    println!("  -> {}", path.display());
    Ok(())
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Scenario 1: 512 due personas, LLM 100 ms per response, concurrency 64; and once
/// with 1024, to show what part of the idle slots is the batch's tail.
async fn occupancy(ctx: &Ctx) -> anyhow::Result<Value> {
    let mut r = occupancy_512(ctx).await?;
    let w = World {
        personas: 1024,
        llm_latency_ms: 100,
        directive: UNIFORM,
        skip: 0,
    };
    let m = tick_run(ctx, "occupancy-1024", w, 64).await?;
    let l = &m.report;
    println!(
        "occupancy with 1024 personas: slot occupancy {:.3} (tick), idle: tail {:.1} %, hand-off {:.1} %",
        f(&l["slotOccupancy"]["tick"]),
        f(&l["idleSlots"]["share"]["tail"]) * 100.0,
        f(&l["idleSlots"]["share"]["poolHandoff"]) * 100.0,
    );
    r["with1024Personas"] = json!({
        "slotOccupancy": l["slotOccupancy"], "idleSlots": l["idleSlots"],
        "personaTicksPerSecond": l["personaTicksPerSecond"], "runnerShare": l["ledger"]["runnerShare"],
        "durationMs": l["ledger"]["durationMs"], "machineLoadBefore": l["machineLoadBefore"],
    });
    m.fixture.sb.shutdown().await;
    Ok(r)
}

async fn occupancy_512(ctx: &Ctx) -> anyhow::Result<Value> {
    repeated(&["slotOccupancy", "tick"], |i| async move {
        let w = World {
            personas: 512,
            llm_latency_ms: 100,
            directive: UNIFORM,
            skip: 0,
        };
        let m = tick_run(ctx, &format!("occupancy-{i}"), w, 64).await?;
        let r = &m.report;
        println!(
            "occupancy: {:.1} persona-ticks/s; slot occupancy {:.3} (tick) / {:.3} (process), idle: tail {:.1} %, hand-off {:.1} %, outside {:.1} %; runner's own share {:.2} % ({:.1} ms of a {:.0} ms persona-tick)",
            f(&r["personaTicksPerSecond"]["tick"]),
            f(&r["slotOccupancy"]["tick"]),
            f(&r["slotOccupancy"]["process"]),
            f(&r["idleSlots"]["share"]["tail"]) * 100.0,
            f(&r["idleSlots"]["share"]["poolHandoff"]) * 100.0,
            f(&r["idleSlots"]["share"]["outsideSpan"]) * 100.0,
            f(&r["ledger"]["runnerShare"]) * 100.0,
            f(&r["ledger"]["runnerOwnMsPerTick"]["mean"]),
            f(&r["ledger"]["durationMs"]["mean"]),
        );
        let mut r = m.report.clone();
        r["cost"] = cost::report(&[&m.fixture.sb], m.ticks.len())?;
        m.fixture.sb.shutdown().await;
        Ok(r)
    })
    .await
}

/// Scenario 2: LLM latency 0: the runner's CPU per persona-tick.
async fn overhead(ctx: &Ctx) -> anyhow::Result<Value> {
    repeated(&["runnerCpuMs", "perPersonaTick"], |i| async move {
        let w = World {
            personas: 512,
            llm_latency_ms: 0,
            directive: UNIFORM,
            skip: 0,
        };
        let m = tick_run(ctx, &format!("overhead-{i}"), w, 64).await?;
        let r = &m.report;
        println!(
            "overhead: runner CPU {:.3} ms per persona-tick (user {:.0} ms + sys {:.0} ms over {} ticks); sandbox CPU {:.0} ms",
            f(&r["runnerCpuMs"]["perPersonaTick"]),
            f(&r["runnerCpuMs"]["user"]),
            f(&r["runnerCpuMs"]["sys"]),
            m.ticks.len(),
            ms(m.sandbox_cpu),
        );
        let r = m.report.clone();
        m.fixture.sb.shutdown().await;
        Ok(r)
    })
    .await
}

/// Scenario 3: 256 personas in flight at once, every one waiting on a slow LLM.
async fn memory(ctx: &Ctx) -> anyhow::Result<Value> {
    memory_at(ctx, "memory", 256, 3000).await
}

/// Scenario 3b: the same with 2048 personas in flight at once and the LLM
/// answering in 2 s: what one waiting persona costs (peak RSS / 2048), the
/// figure issue 12 set a goal for (≤ 128 KiB).
const MEMORY_WIDE: usize = 2048;

async fn memory_wide(ctx: &Ctx) -> anyhow::Result<Value> {
    let mut r = memory_at(ctx, "memory-2048", MEMORY_WIDE, 2000).await?;
    let peak = r["rss"]["peakKiB"].as_f64().unwrap_or(0.0);
    r["rss"]["perPersonaKiB"] = json!(peak / MEMORY_WIDE as f64);
    println!(
        "memory-2048: {:.0} KiB of peak RSS per persona in flight",
        peak / MEMORY_WIDE as f64
    );
    Ok(r)
}

async fn memory_at(ctx: &Ctx, name: &str, personas: usize, llm_ms: u64) -> anyhow::Result<Value> {
    let w = World {
        personas,
        llm_latency_ms: llm_ms,
        directive: "[sandbox:tools=2]",
        skip: 0,
    };
    let m = tick_run(ctx, name, w, personas).await?;
    let first = m.ticks.iter().map(|t| t.started_ms).min().unwrap_or(0);
    let last_start = m.ticks.iter().map(|t| t.started_ms).max().unwrap_or(0);
    let first_end = m.ticks.iter().map(|t| t.finished_ms).min().unwrap_or(0);
    let (peak_at, peak_sample) = m
        .child
        .rss_samples
        .iter()
        .max_by_key(|s| s.1)
        .copied()
        .unwrap_or((0, 0));
    let step = (m.child.rss_samples.len() / 60).max(1);
    let samples: Vec<Value> = m
        .child
        .rss_samples
        .iter()
        .step_by(step)
        .map(|(t, k)| json!([t, k]))
        .collect();
    let mut r = m.report.clone();
    r["allInFlight"] = json!({
        "maxInFlight": ledger::max_overlap(&m.ticks),
        "lastStartAfterFirstMs": last_start - first,
        "firstFinishAfterFirstStartMs": first_end - first,
    });
    r["rss"] = json!({"peakKiB": m.child.peak_rss_kib, "peakMiB": m.child.peak_rss_kib as f64 / 1024.0,
                      "highestSampledRssKiB": peak_sample, "highestSampledRssAtMs": peak_at,
                      "samples(ms,KiB)": samples});
    println!(
        "{name}: peak RSS {:.1} MiB with {} personas in flight at once (all started within {} ms, first finished after {} ms)",
        m.child.peak_rss_kib as f64 / 1024.0,
        ledger::max_overlap(&m.ticks),
        last_start - first,
        first_end - first
    );
    m.fixture.sb.shutdown().await;
    Ok(r)
}

/// Scenario 7: `/report` on a running daemon over 30 days × 1,000 personas
/// of ledger summaries (the target: ≤ 200 ms).
async fn report_scenario(ctx: &Ctx) -> anyhow::Result<Value> {
    let home = ctx.work.join("report");
    let state = home.join("state");
    std::fs::create_dir_all(&state)?;
    let t0 = std::time::Instant::now();
    let s2 = state.clone();
    let size = tokio::task::spawn_blocking(move || report::write_ledger(&s2)).await??;
    println!(
        "report: wrote {} summaries ({:.1} MiB on disk) in {:.1} s",
        report::PERSONAS * report::DAYS,
        size as f64 / 1048576.0,
        t0.elapsed().as_secs_f64()
    );
    let v = report::measure(&ctx.bin, &home, &state).await?;
    for (path, r) in v.as_object().into_iter().flatten() {
        for kind in ["cold", "warm"] {
            let k = &r[kind];
            println!(
                "report: GET {path} {kind}: p50 {:.1} ms, p95 {:.1} ms, slowest {:.1} ms ({} requests, {} bytes)",
                f(&k["p50Ms"]),
                f(&k["p95Ms"]),
                f(&k["maxMs"]),
                r["requests"],
                r["bodyBytes"]
            );
        }
    }
    Ok(json!({"personas": report::PERSONAS, "days": report::DAYS,
              "summaries": report::PERSONAS * report::DAYS, "ledgerBytes": size, "requests": v}))
}

/// Scenario 4: `password EMAIL` and `catalog check` start-up, by hyperfine.
async fn startup(ctx: &Ctx) -> anyhow::Result<Value> {
    let dir = ctx.work.join("startup");
    std::fs::create_dir_all(&dir)?;
    let catalog = dir.join("catalog.json");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog.json"),
        &catalog,
    )?;
    let cmds = [
        (
            "password",
            vec![
                "password".to_string(),
                "persona.jonas@mana.test".to_string(),
            ],
        ),
        (
            "catalog check",
            vec![
                "catalog".to_string(),
                "check".to_string(),
                catalog.display().to_string(),
            ],
        ),
    ];
    let (bin, dir2) = (ctx.bin.clone(), dir.clone());
    let v = tokio::task::spawn_blocking(move || startup::measure(&dir2, &bin, &cmds)).await??;
    for r in v["results"].as_array().into_iter().flatten() {
        println!(
            "startup: {} median {:.2} ms (mean {:.2} ± {:.2} ms, {} runs)",
            r["command"].as_str().unwrap_or("?"),
            f(&r["medianMs"]),
            f(&r["meanMs"]),
            f(&r["stddevMs"]),
            r["runs"]
        );
    }
    Ok(v)
}

/// Deployments of the catalog's size in the cost scenario's second part.
const COST_DEPLOYMENTS: usize = 9;

/// Scenario 5: Cost on the scripted model's own varied days, twice:
///
/// - 128 personas in one tick, one prompt cache: the ~10 personas that share
///   a module mix also share a cached tool list (`TOOLS_OFFER=preferred`);
/// - [`COST_DEPLOYMENTS`] deployments of the catalog's size (each of its
///   personas once, ticking together, a cache of their own): what a
///   deployment with a catalog like ours pays, where no two personas share
///   a module mix.
async fn cost_scenario(ctx: &Ctx) -> anyhow::Result<Value> {
    let w = World {
        personas: 128,
        llm_latency_ms: 0,
        directive: "",
        skip: 0,
    };
    let m = tick_run(ctx, "cost", w, 16).await?;
    let c = cost::report(&[&m.fixture.sb], m.ticks.len())?;
    print_cost("cost, 128 personas, one cache", &c);
    let mut r = m.report.clone();
    r["cost"] = c;
    m.fixture.sb.shutdown().await;

    let size = fixture::catalog_size()?;
    let mut runs = Vec::new();
    for k in 0..COST_DEPLOYMENTS {
        let w = World {
            personas: size,
            llm_latency_ms: 0,
            directive: "",
            skip: k * size,
        };
        runs.push(tick_run(ctx, &format!("cost-catalog-{k}"), w, 16).await?);
    }
    let sbs: Vec<&mana_sandbox::Sandbox> = runs.iter().map(|m| &m.fixture.sb).collect();
    let ticks = runs.iter().map(|m| m.ticks.len()).sum();
    let c = cost::report(&sbs, ticks)?;
    print_cost(
        &format!("cost, {COST_DEPLOYMENTS} deployments of the catalog's {size} personas"),
        &c,
    );
    r["catalogSized"] = json!({"deployments": COST_DEPLOYMENTS, "personasEach": size, "cost": c});
    for m in runs {
        m.fixture.sb.shutdown().await;
    }
    Ok(r)
}

fn print_cost(what: &str, c: &Value) {
    let t = &c["perPersonaTick"];
    println!(
        "{what}: {:.1} % of main-turn input tokens (turn ≥ 2) read from the cache; per persona-tick: input {:.0}, cache read {:.0}, cache write {:.0}, output {:.0} tokens ({:.1} requests, {:.2} tool calls), {:.2} cents at Sonnet prices ({:.3} a tool call), {:.2} at {}'s",
        f(&c["cachedTokenShare"]) * 100.0,
        f(&t["all"]["input"]),
        f(&t["all"]["cacheRead"]),
        f(&t["all"]["cacheWrite"]),
        f(&t["all"]["output"]),
        f(&t["all"]["requests"]),
        f(&c["toolCallsPerPersonaTick"]),
        f(&c["centsPerPersonaTick"]),
        f(&c["centsPerToolCall"]),
        f(&c["centsPerPersonaTickAtTheModelsPrices"]),
        c["model"].as_str().unwrap_or("?"),
    );
}

/// Scenario 6: Throughput at concurrency 1, 8, 64, 256 (LLM 100 ms), and the chart.
async fn scaling(ctx: &Ctx) -> anyhow::Result<Value> {
    let mut levels = Vec::new();
    for &c in SCALING {
        let w = World {
            personas: (4 * c).max(32),
            llm_latency_ms: 100,
            directive: UNIFORM,
            skip: 0,
        };
        let m = tick_run(ctx, &format!("scaling-{c}"), w, c).await?;
        let r = m.report.clone();
        println!(
            "scaling: concurrency {c:>3}: {:>6.1} persona-ticks/s, occupancy {:.3}, mean persona-tick {:.0} ms; CPU busy runner {:.0} % + sandbox {:.0} % of {} cores, machine {:.0} % (runner thread {:.0} % busy)",
            f(&r["personaTicksPerSecond"]["process"]),
            f(&r["slotOccupancy"]["process"]),
            f(&r["ledger"]["durationMs"]["mean"]),
            f(&r["cpuBusyShare"]["runner"]) * 100.0,
            f(&r["cpuBusyShare"]["sandbox"]) * 100.0,
            ctx.cores,
            f(&r["cpuBusyShare"]["machine"]) * 100.0,
            f(&r["runnerThreadBusy"]) * 100.0,
        );
        levels.push(r);
        m.fixture.sb.shutdown().await;
    }
    draw(ctx, &levels)?;
    Ok(json!({ "levels": levels }))
}

/// Writes `scaling.svg` from the levels' reports.
fn draw(ctx: &Ctx, levels: &[Value]) -> anyhow::Result<()> {
    let points: Vec<chart::Point> = levels
        .iter()
        .map(|r| chart::Point {
            concurrency: f(&r["concurrency"]),
            throughput: f(&r["personaTicksPerSecond"]["process"]),
            cpu_busy: f(&r["cpuBusyShare"]["total"]),
            runner_busy: f(&r["cpuBusyShare"]["runner"]),
            machine_busy: f(&r["cpuBusyShare"]["machine"]),
        })
        .collect();
    let svg = chart::svg(
        &format!(
            "mana-personas tick: throughput vs concurrency (LLM 100 ms, {} cores)",
            ctx.cores
        ),
        &points,
    );
    let path = ctx.results.join("scaling.svg");
    std::fs::write(&path, svg)?;
    println!("  -> {}", path.display());
    Ok(())
}

/// `chart`: redraws scaling.svg from the scaling.json already in the results.
fn redraw(ctx: &Ctx) -> anyhow::Result<()> {
    let v: Value = serde_json::from_slice(&std::fs::read(ctx.results.join("scaling.json"))?)?;
    let levels = v["result"]["levels"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    anyhow::ensure!(!levels.is_empty(), "no levels in scaling.json");
    draw(ctx, &levels)
}

fn machine(cores: usize) -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let cmd = |c: &str, args: &[&str]| {
        std::process::Command::new(c)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    json!({
        "nproc": cores,
        "cpu": model,
        "memoryGiB": mem_kib as f64 / 1024.0 / 1024.0,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "rustc": cmd("rustc", &["-V"]),
        "commit": cmd("git", &["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short", "HEAD"]),
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

fn main() -> anyhow::Result<()> {
    // cargo bench passes `--bench`; everything else names scenarios.
    let mut wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let keep = std::env::args().any(|a| a == "--keep");
    // `--wrap='perf record -F 997 -g -o {dir}/perf.data --'`: {dir} is the
    // scenario's work directory.
    let wrap: Vec<String> = std::env::args()
        .find_map(|a| a.strip_prefix("--wrap=").map(str::to_string))
        .map(|w| w.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let profiling = !wrap.is_empty();
    if wanted.is_empty() {
        // memory-2048 only when named: it seeds 2048 personas and holds them
        // all in flight, minutes on this machine for one extra row.
        wanted = SCENARIOS
            .iter()
            .filter(|s| **s != "memory-2048")
            .map(|s| s.to_string())
            .collect();
    }
    if let Some(bad) = wanted
        .iter()
        .find(|w| !SCENARIOS.contains(&w.as_str()) && *w != CHART)
    {
        anyhow::bail!("unknown scenario {bad:?}; known: {}", SCENARIOS.join(", "));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tmp = tempfile::Builder::new()
        .prefix("mana-personas-bench-")
        .tempdir()?;
    let work = tmp.path().to_path_buf();
    // A private copy: another build may replace target/release/ mid-run.
    let src = std::env::var_os("MANA_PERSONAS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mana-personas")));
    let bin = work.join("mana-personas");
    std::fs::copy(&src, &bin).with_context(|| format!("copy {}", src.display()))?;
    // `--out=DIR` (relative to the crate): e.g. a "before" run of an older
    // binary given by MANA_PERSONAS_BIN.
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        std::env::args()
            .find_map(|a| a.strip_prefix("--out=").map(str::to_string))
            .unwrap_or_else(|| "benches/results".to_string()),
    );
    std::fs::create_dir_all(&results)?;
    let m = machine(cores);
    println!("machine: {m}");
    println!("binary: {} (copied from {})", bin.display(), src.display());

    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let needs_template = wanted
            .iter()
            .any(|w| w != "startup" && w != "report" && w != CHART);
        let template = if needs_template {
            let mut most = SCALING.iter().map(|c| (4 * c).max(32)).max().unwrap_or(512);
            if wanted.iter().any(|w| w == "memory-2048") {
                most = most.max(MEMORY_WIDE);
            }
            let t0 = std::time::Instant::now();
            let t = fixture::template(&work, most.max(512)).await?;
            println!(
                "seeded {} personas through the admin API in {:.1} s",
                most.max(512),
                t0.elapsed().as_secs_f64()
            );
            t
        } else {
            PathBuf::new()
        };
        let ctx = Ctx {
            bin,
            work: work.clone(),
            template,
            results: if profiling {
                work.join("results")
            } else {
                results
            },
            cores,
            wrap,
        };
        std::fs::create_dir_all(&ctx.results)?;
        if wanted.iter().any(|w| w != CHART) {
            write_json(&ctx, "machine", &m)?;
        }
        for w in &wanted {
            if w == CHART {
                redraw(&ctx)?;
                continue;
            }
            let v = match w.as_str() {
                "occupancy" => occupancy(&ctx).await?,
                "overhead" => overhead(&ctx).await?,
                "memory" => memory(&ctx).await?,
                "memory-2048" => memory_wide(&ctx).await?,
                "startup" => startup(&ctx).await?,
                "cost" => cost_scenario(&ctx).await?,
                "scaling" => scaling(&ctx).await?,
                "report" => report_scenario(&ctx).await?,
                _ => unreachable!("checked above"),
            };
            write_json(&ctx, w, &json!({"machine": m, "result": v}))?;
        }
        anyhow::Ok(())
    })?;
    if keep || profiling {
        println!("kept the work directory: {}", tmp.keep().display());
    }
    Ok(())
}
