//! Data parallelism for model batches on the CPU: a batch is split into one part per thread, and
//! each part runs on a thread of its own whose candle ops are single-threaded.
//!
//! Splitting every matrix product of one batch across the threads (candle's default) leaves them
//! waiting on each other at every op, and the element-wise ops between the products run on one
//! thread; measured on ViT-B/32 over two cores, two halves of a batch run side by side embed
//! about 1.5× the images per second.

use std::cell::Cell;
use std::sync::OnceLock;

use rayon::{ThreadPool, ThreadPoolBuilder};

thread_local! {
    static IN_PART: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread runs one part of a split batch (its products should not fan out again).
pub fn in_part() -> bool {
    IN_PART.with(Cell::get)
}

/// One single-thread pool per worker: rayon work inside `install` stays on that thread.
fn pools() -> &'static [ThreadPool] {
    static POOLS: OnceLock<Vec<ThreadPool>> = OnceLock::new();
    POOLS.get_or_init(|| {
        (0..rayon::current_num_threads())
            .filter_map(|i| {
                ThreadPoolBuilder::new()
                    .num_threads(1)
                    .thread_name(move |_| format!("shoebox-model-{i}"))
                    .start_handler(|_| IN_PART.with(|p| p.set(true)))
                    .build()
                    .ok()
            })
            .collect()
    })
}

/// `f` over `items`, split into one contiguous part per worker, run side by side; the results in
/// order. Fewer items than two per worker, or one worker: `f` on all of them, as usual.
pub fn split_batch<T, R, E>(
    items: &[T],
    min_per_part: usize,
    f: impl Fn(&[T]) -> Result<Vec<R>, E> + Sync,
) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
{
    let pools = pools();
    let parts = pools.len().min(items.len() / min_per_part.max(1));
    if parts < 2 {
        return f(items);
    }
    let per = items.len().div_ceil(parts);
    let f = &f;
    let results: Vec<Result<Vec<R>, E>> = std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(per)
            .zip(pools)
            .map(|(chunk, pool)| s.spawn(move || pool.install(|| f(chunk))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut out = Vec::with_capacity(items.len());
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

/// Keep candle's own element-wise thread pool out of the way. Shoebox spreads model work over
/// threads above candle (a batch split into one part per thread, its kernels on rayon), while
/// candle's pool lets one caller in at a time and spins at a barrier after each large
/// element-wise op: the parts of a split batch queue behind each other and the spinning takes
/// cores from decoding (ViT-B/32 on 2 cores: q8 61 → 71 img/s, f32 25 → 27 img/s without it).
/// Sets `CANDLE_NUM_THREADS=1` unless the environment sets it; call it first thing in `main`,
/// before any other thread exists (changing the environment is not thread-safe).
pub fn keep_candle_pool_out() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}
