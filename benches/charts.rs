//! Draws the charts of `benches/README.md` from the numbers the benches left behind, and prints
//! the tables of criterion's medians that the README quotes (hits on 1 and 2 threads, misses,
//! async hits, each with its ratio to the baseline of the same run):
//!
//! - `benches/charts/hit_throughput.svg`: aggregate hit throughput on 1 and 2 threads of every
//!   peer, u64 keys (`peers.rs`) and `String` keys (`peers_string.rs`), from criterion's medians
//!   (`target/criterion/**/new/estimates.json`);
//! - `benches/charts/hit_ratio.svg`: hit ratio against capacity of every bounded cache on the
//!   zipf and zipf+scan traces, from `target/bench-data/hit_ratio.csv` (`hit_ratio.rs`);
//! - `benches/charts/store_mix.svg`: the headline workloads of `store_mix.rs` (invalidation,
//!   a service, a mixed load, misses, memory, `invalidate_if`), a bar per store on a log scale,
//!   from `target/bench-data/store_mix.tsv`.
//!
//! Run the benches first; `bash benches/regenerate.sh` runs them all and then this.
//! `cargo bench --bench charts` alone redraws from the last results.

mod common;

use common::{data_dir, measuring, target_dir};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::collections::HashMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// A hit group of criterion: its id, the chart panel's title, and its rows in the order shown,
/// each a benchmark id (its function) and its label. The first row is the baseline.
struct HitGroup {
    id: &'static str,
    title: &'static str,
    rows: &'static [(&'static str, &'static str)],
}

const BASELINE: (&str, &str) = ("read-only HashMap", "read-only HashMap (baseline)");

const HIT_GROUPS: [HitGroup; 2] = [
    HitGroup {
        id: "peers hit",
        title: "u64 keys (benches/peers.rs)",
        rows: &[
            BASELINE,
            ("memoflight", "memoflight #[cached]"),
            ("cached", "cached #[cached]"),
            (
                "cached sync_writes=default",
                "cached sync_writes=\"default\"",
            ),
            ("cached sync_writes=by_key", "cached sync_writes=\"by_key\""),
            (
                "quick_cache get_or_insert_with",
                "quick_cache get_or_insert_with",
            ),
            ("moka get_with", "moka get_with"),
        ],
    },
    HitGroup {
        id: "peers hit String",
        title: "String keys, looked up by &str (benches/peers_string.rs)",
        rows: &[
            BASELINE,
            ("memoflight", "memoflight #[cached]"),
            ("cached", "cached #[cached]"),
            (
                "cached sync_writes=default",
                "cached sync_writes=\"default\"",
            ),
            ("cached sync_writes=by_key", "cached sync_writes=\"by_key\""),
            (
                "quick_cache get_or_insert_with",
                "quick_cache get_or_insert_with",
            ),
            ("moka get_with_by_ref", "moka get_with_by_ref"),
            ("moka get_with", "moka get_with"),
        ],
    },
];

/// Hit groups printed as tables but not charted.
const PRINTED_HIT_GROUPS: [HitGroup; 1] = [HitGroup {
    id: "hit",
    title: "u64 keys, memoflight's stores (benches/hit_path.rs)",
    rows: &[
        BASELINE,
        ("memoflight", "memoflight #[cached]"),
        ("memoflight max_size", "memoflight #[cached(max_size)]"),
        (
            "memoflight max_size+ttl",
            "memoflight #[cached(max_size, ttl)]",
        ),
    ],
}];

/// A group of single measurements: its id, its title, and its rows in the order shown, each a
/// benchmark id (function and parameter, `""` for none) and its label; the first is the
/// baseline.
struct MedianGroup {
    id: &'static str,
    title: &'static str,
    rows: &'static [(&'static str, &'static str, &'static str)],
}

const MEDIAN_GROUPS: [MedianGroup; 3] = [
    MedianGroup {
        id: "miss",
        title: "Miss, trivial function (benches/hit_path.rs)",
        rows: &[
            ("HashMap insert", "", "HashMap insert (baseline)"),
            ("memoflight", "", "memoflight Cache, fresh per sample"),
        ],
    },
    MedianGroup {
        id: "peers miss",
        title: "Miss, trivial function (benches/peers.rs)",
        rows: &[
            ("HashMap insert", "", "HashMap insert (baseline)"),
            (
                "memoflight Cache (fresh per sample)",
                "",
                "memoflight Cache::get_or_compute, fresh cache per sample",
            ),
            (
                "quick_cache get_or_insert_with (fresh per sample)",
                "",
                "quick_cache, fresh cache per sample",
            ),
            (
                "moka get_with (fresh per sample)",
                "",
                "moka, fresh cache per sample",
            ),
            (
                "cached macro (increasing keys)",
                "",
                "cached #[cached], increasing keys",
            ),
            (
                "cached sync_writes=default macro (increasing keys)",
                "",
                "cached sync_writes=\"default\", increasing keys",
            ),
            (
                "cached sync_writes=by_key macro (increasing keys)",
                "",
                "cached sync_writes=\"by_key\", increasing keys",
            ),
            (
                "memoflight macro (increasing keys)",
                "",
                "memoflight #[cached], increasing keys",
            ),
        ],
    },
    MedianGroup {
        id: "peers_async hit",
        title: "Async hit, tokio current-thread runtime (benches/peers_async.rs)",
        rows: &[
            (
                "read-only HashMap in async block",
                "current_thread",
                "read-only HashMap in an async block (baseline)",
            ),
            (
                "memoflight",
                "current_thread",
                "memoflight #[cached] async fn",
            ),
            ("cached", "current_thread", "cached #[cached]"),
            (
                "cached sync_writes=default",
                "current_thread",
                "cached sync_writes=\"default\"",
            ),
            (
                "cached sync_writes=by_key",
                "current_thread",
                "cached sync_writes=\"by_key\"",
            ),
            (
                "moka future get_with",
                "current_thread",
                "moka future::Cache::get_with",
            ),
        ],
    },
];

const THREADS: [usize; 2] = [1, 2];

/// Criterion's medians, in nanoseconds per iteration, and when each was written, by (group,
/// function, parameter).
type Medians = HashMap<(String, String, String), (f64, SystemTime)>;

/// Results further apart than this were not written by one run of the benches.
const ONE_RUN: Duration = Duration::from_secs(30 * 60);

fn criterion_dir() -> PathBuf {
    std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("criterion"))
}

/// Reads every `new/estimates.json` under `dir`, named by its `new/benchmark.json`.
fn read_medians(dir: &Path, medians: &mut Medians) -> Result<()> {
    let new = dir.join("new");
    if new.join("benchmark.json").is_file() && new.join("estimates.json").is_file() {
        let id: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(new.join("benchmark.json"))?)?;
        let estimates: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(new.join("estimates.json"))?)?;
        let field = |name: &str| id[name].as_str().unwrap_or_default().to_string();
        let median = estimates["median"]["point_estimate"]
            .as_f64()
            .ok_or("estimates.json without a median")?;
        let written = std::fs::metadata(new.join("estimates.json"))?.modified()?;
        medians.insert(
            (field("group_id"), field("function_id"), field("value_str")),
            (median, written),
        );
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "new" && n != "base") {
            read_medians(&path, medians)?;
        }
    }
    Ok(())
}

/// One row of a hit group: its label and its median ns per iteration on 1 and 2 threads.
struct HitRow {
    label: &'static str,
    ns: [f64; 2],
}

impl HitRow {
    /// Aggregate lookups per second on `THREADS[i]` threads, in millions: each thread does one
    /// lookup per iteration.
    fn mops(&self, i: usize) -> f64 {
        THREADS[i] as f64 * 1e3 / self.ns[i]
    }
}

/// The median of benchmark `group/function/parameter`.
fn median(medians: &Medians, group: &str, function: &str, parameter: &str) -> Result<f64> {
    let key = (group.into(), function.into(), parameter.into());
    let (median, _) = medians.get(&key).ok_or_else(|| {
        format!("no criterion result for `{group}/{function}/{parameter}`: run its bench first")
    })?;
    Ok(*median)
}

/// Warns when the results shown were written further apart than one run of the benches takes:
/// some bench was not run again, and its old numbers would be mixed with new ones.
fn warn_if_stale(medians: &Medians) {
    let shown = HIT_GROUPS
        .iter()
        .chain(&PRINTED_HIT_GROUPS)
        .map(|g| g.id)
        .chain(MEDIAN_GROUPS.iter().map(|g| g.id));
    let times: Vec<SystemTime> = shown
        .flat_map(|id| {
            medians
                .iter()
                .filter(move |((group, _, _), _)| group == id)
                .map(|(_, &(_, written))| written)
        })
        .collect();
    let (Some(first), Some(last)) = (times.iter().min(), times.iter().max()) else {
        return;
    };
    let span = last.duration_since(*first).unwrap_or_default();
    if span > ONE_RUN {
        eprintln!(
            "charts: WARNING: the results shown were written {} min apart; rerun every bench \
             (bash benches/regenerate.sh) so that they come from one run",
            span.as_secs() / 60
        );
    }
}

fn hit_rows(group: &HitGroup, medians: &Medians) -> Result<Vec<HitRow>> {
    group
        .rows
        .iter()
        .map(|&(function, label)| {
            let mut ns = [0.0; 2];
            for (slot, threads) in ns.iter_mut().zip(THREADS) {
                *slot = median(medians, group.id, function, &threads.to_string())?;
            }
            Ok(HitRow { label, ns })
        })
        .collect()
}

fn print_median_table(group: &MedianGroup, medians: &Medians) -> Result<()> {
    println!("\n### {}: `{}`, criterion medians\n", group.title, group.id);
    println!("| peer | median | ratio to baseline |");
    println!("|---|---|---|");
    let mut baseline = None;
    for &(function, parameter, label) in group.rows {
        let ns = median(medians, group.id, function, parameter)?;
        let baseline = *baseline.get_or_insert(ns);
        println!("| {label} | {ns:.2} ns | {:.2}× |", ns / baseline);
    }
    Ok(())
}

fn print_hit_table(group: &HitGroup, rows: &[HitRow]) {
    println!("\n### {}: `{}`, criterion medians\n", group.title, group.id);
    println!(
        "| peer | 1 thread | ratio to baseline | 2 threads, wall per iteration | \
         throughput 1 → 2 threads | scaling |"
    );
    println!("|---|---|---|---|---|---|");
    let baseline = &rows[0];
    for row in rows {
        println!(
            "| {} | {:.2} ns | {:.2}× | {:.2} ns | {:.0} → {:.0} M/s | {:.2}× |",
            row.label,
            row.ns[0],
            row.ns[0] / baseline.ns[0],
            row.ns[1],
            row.mops(0),
            row.mops(1),
            row.mops(1) / row.mops(0),
        );
    }
}

const THREAD_COLORS: [RGBColor; 2] = [RGBColor(0x4c, 0x72, 0xb0), RGBColor(0xdd, 0x84, 0x52)];

/// One panel of horizontal bars: a row per peer (the baseline on top), a bar per thread count.
fn draw_hits(area: &DrawingArea<SVGBackend, Shift>, title: &str, rows: &[HitRow]) -> Result<()> {
    let n = rows.len();
    let max = rows
        .iter()
        .flat_map(|r| [r.mops(0), r.mops(1)])
        .fold(0.0, f64::max);
    // Row i (from the top) spans y in [n - 1 - i, n - i].
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(250)
        .build_cartesian_2d(0.0..max * 1.18, 0.0..n as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .light_line_style(WHITE)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("hits per second, all threads together (millions; higher is better)")
        .label_style(("sans-serif", 13))
        .draw()?;
    // The peers' names, right-aligned left of the axis at each row's centre (plotters' tick
    // labels of an f64 axis fall on round numbers, not on rows).
    let name_style = TextStyle::from(("sans-serif", 13)).pos(Pos::new(HPos::Right, VPos::Center));
    for (i, row) in rows.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(0.0, (n - 1 - i) as f64 + 0.5));
        let (base_x, base_y) = area.get_base_pixel();
        area.draw(&Text::new(
            row.label,
            (x - base_x - 8, y - base_y),
            name_style.clone(),
        ))?;
    }
    // In each row, the 1-thread bar above its centre and the 2-thread bar below.
    let bar = |i: usize, t: usize| {
        let centre = (n - 1 - i) as f64 + 0.5;
        let edges = [(centre + 0.4, centre + 0.03), (centre - 0.03, centre - 0.4)][t];
        (edges, (edges.0 + edges.1) / 2.0)
    };
    let value_style = TextStyle::from(("sans-serif", 12)).pos(Pos::new(HPos::Left, VPos::Center));
    for (t, (&threads, color)) in THREADS.iter().zip(THREAD_COLORS).enumerate() {
        let bars = rows.iter().enumerate().map(move |(i, row)| {
            let ((top, bottom), _) = bar(i, t);
            Rectangle::new([(0.0, top), (row.mops(t), bottom)], color.filled())
        });
        chart
            .draw_series(bars)?
            .label(format!(
                "{threads} thread{}",
                if threads == 1 { "" } else { "s" }
            ))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
        let values = rows.iter().enumerate().map(|(i, row)| {
            let (_, middle) = bar(i, t);
            Text::new(
                format!(" {:.0}", row.mops(t)),
                (row.mops(t), middle),
                value_style.clone(),
            )
        });
        chart.draw_series(values)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn hit_chart(path: &Path, groups: &[(&HitGroup, Vec<HitRow>)]) -> Result<()> {
    let height = groups
        .iter()
        .map(|(_, rows)| 90 + 52 * rows.len() as u32)
        .sum();
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(90 + 52 * groups[0].1.len() as u32);
    for ((group, rows), area) in groups.iter().zip([top, bottom]) {
        draw_hits(&area, &format!("Hit throughput, {}", group.title), rows)?;
    }
    root.present()?;
    Ok(())
}

/// `hit_ratio.csv`: per trace, per cache, (capacity, hit ratio) in file order.
type Ratios = Vec<(String, Vec<(String, Vec<(f64, f64)>)>)>;

fn read_ratios(path: &Path) -> Result<Ratios> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{}: {e}; run `cargo bench --bench hit_ratio` first",
            path.display()
        )
    })?;
    let mut ratios: Ratios = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let [trace, capacity, cache, ratio] = fields[..] else {
            return Err(format!("bad line in {}: {line}", path.display()).into());
        };
        let point = (capacity.parse()?, 100.0 * ratio.parse::<f64>()?);
        let caches = match ratios.iter_mut().find(|(t, _)| t == trace) {
            Some((_, caches)) => caches,
            None => {
                ratios.push((trace.to_string(), Vec::new()));
                &mut ratios.last_mut().expect("just pushed").1
            }
        };
        match caches.iter_mut().find(|(c, _)| c == cache) {
            Some((_, points)) => points.push(point),
            None => caches.push((cache.to_string(), vec![point])),
        }
    }
    Ok(ratios)
}

const CACHE_COLORS: [RGBColor; 4] = [
    RGBColor(0x88, 0x88, 0x88),
    RGBColor(0xc4, 0x4e, 0x52),
    RGBColor(0x4c, 0x72, 0xb0),
    RGBColor(0x55, 0xa8, 0x68),
];

fn ratio_chart(path: &Path, ratios: &Ratios) -> Result<()> {
    let root = SVGBackend::new(path, (960, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, ratios.len()));
    for ((trace, caches), area) in ratios.iter().zip(&panels) {
        let capacities = caches[0].1.iter().map(|&(c, _)| c);
        let lo = capacities.clone().fold(f64::INFINITY, f64::min);
        let hi = capacities.fold(0.0, f64::max);
        let top = caches
            .iter()
            .flat_map(|(_, points)| points.iter().map(|&(_, r)| r))
            .fold(0.0, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(format!("Hit ratio, {trace} trace"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(
                (lo * 0.8..hi * 1.25).log_scale(),
                0.0..(top * 1.1).min(100.0),
            )?;
        chart
            .configure_mesh()
            .x_desc("capacity (entries, log scale)")
            .y_desc("hits, % of requests")
            .x_label_formatter(&|c| format!("{c:.0}"))
            .y_label_formatter(&|r| format!("{r:.0}"))
            .light_line_style(WHITE)
            .label_style(("sans-serif", 13))
            .draw()?;
        for ((cache, points), color) in caches.iter().zip(CACHE_COLORS.iter().cycle()) {
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(cache.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart.draw_series(
                points
                    .iter()
                    .map(move |&p| Circle::new(p, 3, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// `store_mix.tsv`: per panel (its title), per store, one value, in file order.
type Panels = Vec<(String, Vec<(String, f64)>)>;

fn read_panels(path: &Path) -> Result<Panels> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{}: {e}; run `cargo bench --bench store_mix` first",
            path.display()
        )
    })?;
    let mut panels: Panels = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [panel, store, value] = fields[..] else {
            return Err(format!("bad line in {}: {line}", path.display()).into());
        };
        let bar = (store.replace('`', ""), value.parse()?);
        match panels.iter_mut().find(|(p, _)| p == panel) {
            Some((_, bars)) => bars.push(bar),
            None => panels.push((panel.to_string(), vec![bar])),
        }
    }
    Ok(panels)
}

/// Our two stores in the first colour, the peers in the second.
const STORE_COLORS: [RGBColor; 2] = [RGBColor(0xc4, 0x4e, 0x52), RGBColor(0x4c, 0x72, 0xb0)];

/// One horizontal bar per store, on a log scale (moka sits one to two orders of magnitude
/// away from the others on several workloads), each with its value written at its end.
fn draw_panel(
    area: &DrawingArea<SVGBackend, Shift>,
    title: &str,
    bars: &[(String, f64)],
) -> Result<()> {
    let n = bars.len();
    let positive = bars.iter().map(|&(_, v)| v).filter(|&v| v > 0.0);
    let lo = positive.clone().fold(f64::INFINITY, f64::min);
    let hi = positive.fold(0.0, f64::max);
    if !lo.is_finite() {
        return Ok(());
    }
    let (lo, hi) = (lo / 3.0, hi * 6.0);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(170)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..n as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .light_line_style(WHITE)
        .x_label_formatter(&|x| format!("{x}"))
        .label_style(("sans-serif", 12))
        .draw()?;
    let name_style = TextStyle::from(("sans-serif", 12)).pos(Pos::new(HPos::Right, VPos::Center));
    let value_style = TextStyle::from(("sans-serif", 12)).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (store, value)) in bars.iter().enumerate() {
        let centre = (n - 1 - i) as f64 + 0.5;
        let (x, y) = chart.backend_coord(&(lo, centre));
        let (base_x, base_y) = area.get_base_pixel();
        area.draw(&Text::new(
            store.as_str(),
            (x - base_x - 8, y - base_y),
            name_style.clone(),
        ))?;
        let color = STORE_COLORS[usize::from(!store.starts_with("memoflight"))];
        let end = value.max(lo);
        chart.draw_series([Rectangle::new(
            [(lo, centre + 0.35), (end, centre - 0.35)],
            color.filled(),
        )])?;
        let shown = match *value {
            v if v >= 100.0 => format!(" {v:.0}"),
            v if v >= 10.0 => format!(" {v:.1}"),
            v => format!(" {v:.2}"),
        };
        chart.draw_series([Text::new(shown, (end, centre), value_style.clone())])?;
    }
    Ok(())
}

fn store_mix_chart(path: &Path, panels: &Panels) -> Result<()> {
    let rows = panels.len().div_ceil(2) as u32;
    let root = SVGBackend::new(path, (1100, 250 * rows)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((rows as usize, 2));
    for ((title, bars), area) in panels.iter().zip(&areas) {
        draw_panel(area, title, bars)?;
    }
    root.present()?;
    Ok(())
}

fn main() -> Result<()> {
    // `cargo test` would find no results, or stale ones, and must not rewrite the charts.
    if !measuring() {
        println!("charts: run with `cargo bench --bench charts` after the benches");
        return Ok(());
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts");
    std::fs::create_dir_all(&out)?;

    let mut medians = Medians::new();
    read_medians(&criterion_dir(), &mut medians)?;
    warn_if_stale(&medians);
    let groups = HIT_GROUPS
        .iter()
        .map(|group| Ok((group, hit_rows(group, &medians)?)))
        .collect::<Result<Vec<_>>>()?;
    for (group, rows) in &groups {
        print_hit_table(group, rows);
    }
    for group in &PRINTED_HIT_GROUPS {
        print_hit_table(group, &hit_rows(group, &medians)?);
    }
    for group in &MEDIAN_GROUPS {
        print_median_table(group, &medians)?;
    }
    let path = out.join("hit_throughput.svg");
    hit_chart(&path, &groups)?;
    eprintln!("charts: wrote {}", path.display());

    let ratios = read_ratios(&data_dir().join("hit_ratio.csv"))?;
    let path = out.join("hit_ratio.svg");
    ratio_chart(&path, &ratios)?;
    eprintln!("charts: wrote {}", path.display());

    let panels = read_panels(&data_dir().join("store_mix.tsv"))?;
    let path = out.join("store_mix.svg");
    store_mix_chart(&path, &panels)?;
    eprintln!("charts: wrote {}", path.display());
    Ok(())
}
