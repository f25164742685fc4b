//! What the load test reads off the servers: /proc figures and Prometheus
//! series from `/metrics`.

use super::fleet::Fleet;

/// What /proc says of the server process.
pub struct ProcStat {
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub cpu_seconds: f64,
}

pub fn proc_stat(pid: u32) -> anyhow::Result<ProcStat> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
            * 1024
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): utime is the
    // 14th field overall, stime the 15th; both in clock ticks (100 a second).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(ProcStat {
        rss_bytes: kib("VmRSS:"),
        peak_rss_bytes: kib("VmHWM:"),
        cpu_seconds: (ticks(11) + ticks(12)) as f64 / 100.0,
    })
}

/// A quantile of a Prometheus histogram, interpolated within its bucket.
pub fn histogram_quantile(metrics: &str, name: &str, q: f64) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((le, count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    let rank = q * total;
    let mut previous = (0.0, 0.0);
    for &(le, count) in &buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(previous.0);
            }
            let share = if count > previous.1 {
                (rank - previous.1) / (count - previous.1)
            } else {
                0.0
            };
            return Some(previous.0 + share * (le - previous.0));
        }
        previous = (le, count);
    }
    None
}

/// The value of one exact series (name and labels) of a gauge.
pub fn gauge(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A gauge summed over the live instances.
pub async fn gauge_sum(http: &reqwest::Client, fleet: &Fleet, series: &str) -> anyhow::Result<f64> {
    let mut sum = 0.0;
    for server in fleet.alive() {
        sum += gauge(&scrape(http, &server.base).await?, series);
    }
    Ok(sum)
}

pub async fn scrape(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    Ok(http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}

pub fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Rows the ownership upkeep wrote so far, summed over the live instances
/// (`scribe_lease_rows_written_total`, every statement but `acquire`).
pub async fn upkeep_rows(
    http: &reqwest::Client,
    fleet: &crate::fleet::Fleet,
) -> anyhow::Result<f64> {
    const ROWS: &str = "scribe_lease_rows_written_total";
    let mut rows = 0.0;
    for server in fleet.alive() {
        let text = scrape(http, &server.base).await?;
        rows += counter(&text, ROWS) - counter(&text, &format!("{ROWS}{{statement=\"acquire\"}}"));
    }
    Ok(rows)
}
