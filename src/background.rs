//! Background work (reading and checking an import's rows, checkpointing the database) runs
//! on threads that yield the CPU to the threads answering requests: a busy import slows down
//! while the API is busy, instead of the API slowing down while an import runs. A thread that
//! holds a lock requests wait for (an import's writer) keeps the normal priority: lowered, it
//! would make them wait longer (a write request's p90 went from 16-33 to 78-89 ms during a
//! load with the API saturated).

/// The niceness of background threads (0 is the default, 19 the lowest priority).
const NICENESS: i32 = 10;

/// Lowers the calling thread's CPU priority; best effort (a system that refuses leaves it).
/// Only for threads of their own: a thread cannot raise its priority back without
/// privileges, so a pooled thread must never call this.
pub fn lower_this_thread() {
    // On Linux, a priority set for a thread id applies to that thread alone.
    #[cfg(target_os = "linux")]
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), NICENESS);
}

/// How a background thread shares the CPU with the threads answering requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// It yields to them.
    Yield,
    /// As much as they: for a thread that holds locks they wait for.
    Equal,
}

/// Starts `f` on a new thread named `name`; the future answers what it returns, without
/// holding up the async runtime meanwhile, or fails when `f` panics.
pub fn spawn<T, F>(
    name: &str,
    share: Share,
    f: F,
) -> std::io::Result<impl Future<Output = std::io::Result<T>> + use<T, F>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            if share == Share::Yield {
                lower_this_thread();
            }
            let _ = done.send(f());
        })?;
    let name = name.to_owned();
    Ok(async move {
        result
            .await
            .map_err(|_| std::io::Error::other(format!("the {name} thread panicked")))
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The niceness of a thread started with `share`.
    async fn niceness_of(share: Share) -> i32 {
        spawn("intake-test", share, || {
            rustix::process::getpriority_process(Some(rustix::thread::gettid()))
        })
        .expect("thread")
        .await
        .expect("answer")
        .expect("priority")
    }

    #[tokio::test]
    async fn a_yielding_thread_runs_at_the_lower_priority_an_equal_one_does_not() {
        assert_eq!(niceness_of(Share::Yield).await, NICENESS);
        // The caller's own thread keeps its priority, and so does an equal-share thread.
        let mine =
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).expect("priority");
        assert_ne!(mine, NICENESS);
        assert_eq!(niceness_of(Share::Equal).await, mine);
    }

    #[tokio::test]
    async fn a_panicking_background_thread_fails_its_future() {
        let fut = spawn("intake-test", Share::Equal, || -> u32 { panic!("boom") }).expect("thread");
        let err = fut.await.expect_err("a panic");
        assert!(err.to_string().contains("intake-test"), "{err}");
    }
}
