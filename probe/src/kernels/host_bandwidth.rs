//! Host RAM read bandwidth with every core reading: what a CPU running offloaded layers reaches
//! (llama.cpp reads host-resident weights on the CPU for every decode step).
//!
//! One buffer far larger than the last-level cache is filled with random words; each repeat
//! splits it into one contiguous chunk per core, and scoped threads sum their chunk (wrapping
//! 64-bit adds, which the compiler vectorizes, so the loop is bound by memory, not arithmetic).
//! Every repeat's total is checked against a single-threaded reference sum of the same words
//! before any speed counts; the speed is the buffer's bytes over the median repeat's time.
//!
//! Native only: a browser tab's WebAssembly runs on one thread without shared memory, so the
//! browser plan skips this stage and says why ([`crate::plan::BROWSER_HOST_BANDWIDTH_SKIP`]).

use headroom_core::report::{HostMetric, Measurement, Metric, Status, Timing, Verification};

use super::{MeasureSettings, failed};
use crate::ProbeError;

/// Inputs to the host-bandwidth stage.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBandwidthParams {
    /// Buffer size, bytes (rounded down to whole 8-byte words).
    pub size_bytes: u64,
    /// Seed of the data.
    pub seed: u64,
    /// Measurement length: repeats until `target_s` has passed.
    pub settings: MeasureSettings,
}

/// Fewest timed repeats (a median of three is the least that ignores one outlier).
pub const MIN_REPEATS: u32 = 3;

/// Most timed repeats.
pub const MAX_REPEATS: u32 = 50;

/// Words of the buffer: an LCG (Knuth's MMIX constants) from `seed`, so a stale or skipped
/// read cannot match the reference sum.
fn fill(words: &mut [u64], seed: u64) {
    let mut x = seed | 1;
    for w in words {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *w = x;
    }
}

fn sum(words: &[u64]) -> u64 {
    words.iter().fold(0u64, |acc, w| acc.wrapping_add(*w))
}

/// Sum of `words` read by `threads` threads, each a contiguous chunk.
fn parallel_sum(words: &[u64], threads: usize) -> u64 {
    let chunk = words.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = words
            .chunks(chunk)
            .map(|part| scope.spawn(move || sum(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(0))
            .fold(0u64, u64::wrapping_add)
    })
}

/// Runs the stage: one `host_bandwidth.read` measurement (failed with its error when the buffer
/// cannot be allocated or a sum is wrong).
pub fn run(p: &HostBandwidthParams) -> Measurement {
    let name = Metric::Host(HostMetric::Read);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let words_len = usize::try_from(p.size_bytes / 8).unwrap_or(0);
    let params = crate::params! {
        "buffer_bytes" => words_len as u64 * 8,
        "threads" => threads as u64,
        "statistic" => "median of repeats",
    };
    let mut words: Vec<u64> = Vec::new();
    if words_len == 0 || words.try_reserve_exact(words_len).is_err() {
        return failed(
            name,
            params,
            &ProbeError::Unsupported(format!(
                "could not allocate {} bytes of host memory",
                p.size_bytes
            )),
        );
    }
    words.resize(words_len, 0);
    fill(&mut words, p.seed);
    let reference = sum(&words);
    // One untimed pass brings the pages in (first touch) and starts the threads' cores.
    let mut wrong = u64::from(parallel_sum(&words, threads) != reference);
    let mut times = Vec::new();
    let started = std::time::Instant::now();
    while times.len() < MIN_REPEATS as usize
        || (started.elapsed().as_secs_f64() < p.settings.target_s
            && times.len() < MAX_REPEATS as usize)
    {
        let t = std::time::Instant::now();
        let total = parallel_sum(&words, threads);
        times.push(t.elapsed().as_secs_f64());
        wrong += u64::from(total != reference);
    }
    let repeats = times.len() as u32;
    let total_s: f64 = times.iter().sum();
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let checked = u64::from(repeats) + 1;
    let passed = wrong == 0;
    Measurement {
        name,
        status: if passed { Status::Ok } else { Status::Failed },
        error: (!passed).then(|| {
            format!("wrong result: {wrong} of {checked} parallel sums differ from the reference")
        }),
        params,
        verification: Some(Verification {
            passed,
            rel_error: wrong as f64 / checked as f64,
            tolerance: 0.0,
            checked_elements: checked,
            reference: "single-threaded CPU sum of the same words".to_owned(),
        }),
        timing: Some(Timing {
            timer: "wall_clock".to_owned(),
            iterations: repeats,
            total_s,
            per_iter_s: median,
        }),
        flops_per_s: None,
        bytes_per_s: (passed && median > 0.0).then(|| (words_len as f64 * 8.0) / median),
        bytes_counted: Some("read, all cores".into()),
        tokens_per_s: None,
        accumulator: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parallel_sum_is_the_reference_sum() {
        let mut words = vec![0u64; 10_007];
        fill(&mut words, 42);
        for threads in [1, 2, 3, 16] {
            assert_eq!(parallel_sum(&words, threads), sum(&words), "{threads}");
        }
        let m = run(&HostBandwidthParams {
            size_bytes: 8 << 20,
            seed: 7,
            settings: MeasureSettings::ONCE,
        });
        assert_eq!(m.status, Status::Ok, "{:?}", m.error);
        assert!(m.bytes_per_s.is_some_and(|b| b > 0.0));
        assert_eq!(m.timing.map(|t| t.iterations), Some(MIN_REPEATS));
    }
}
