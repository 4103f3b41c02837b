//! The pipelined scheduler (mdtmFTP): dedicated disk-reader threads, processing threads and
//! one sending thread per stream, joined by bounded queues as long as the pool, so a slow step
//! holds the others back instead of growing memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::place::placement::Role;
use crate::sched::timeline::Wait;
use crate::sched::{guarded, spawn, Crew, Work};

/// Runs `work` until its reads are exhausted and every block read was sent, or it stops.
pub fn run<W: Work>(work: &W, crew: &Crew<'_>) {
    let gauges = crew.gauges;
    let cap = crew.buffers.max(2);
    let (read_tx, read_rx) = bounded::<W::Block>(cap);
    let (send_tx, send_rx) = bounded::<W::Block>(cap);
    // Processors still running: while any is, blocks may still come for new streams.
    let processing = &AtomicUsize::new(crew.processors);
    std::thread::scope(|s| {
        for i in 0..crew.readers {
            let tx = read_tx.clone();
            let name = format!("lh-rd-{i}");
            spawn(s, name.clone(), "reader", work, move || {
                work.pin(Role::Disk, i, &name);
                guarded(work, || {
                    loop {
                        let got = {
                            let _g = gauges.reading();
                            work.read()?
                        };
                        let Some(p) = got else { break };
                        let _g = gauges.blocked(Wait::Queue);
                        if tx.send(p).is_err() {
                            break;
                        }
                    }
                    Ok(())
                })
            });
        }
        drop(read_tx);
        for i in 0..crew.processors {
            let (rx, tx): (Receiver<W::Block>, Sender<W::Block>) = (read_rx.clone(), send_tx.clone());
            let name = format!("lh-pr-{i}");
            spawn(s, name.clone(), "processor", work, move || {
                work.pin(Role::Other, i, &name);
                let _gone = Gone(processing);
                loop {
                    let got = {
                        let _g = gauges.blocked(Wait::Input);
                        rx.recv()
                    };
                    let Ok(mut p) = got else { break };
                    gauges.set_queued(rx.len());
                    {
                        let _g = gauges.processing();
                        work.process(&mut p);
                    }
                    let _g = gauges.blocked(Wait::Queue);
                    if tx.send(p).is_err() {
                        break;
                    }
                }
            });
        }
        drop(send_tx);
        // Only the processors may hold the read queue's receiving end: once they are gone
        // (or the senders below), the queue disconnects and no thread waits on it forever.
        drop(read_rx);
        let sender = |i: usize| {
            let rx = send_rx.clone();
            let name = format!("lh-tx-{i}");
            spawn(s, name.clone(), "sender", work, move || {
                work.pin(Role::Net, i, &name);
                guarded(work, || {
                    loop {
                        {
                            let _g = gauges.sending();
                            work.await_room(i);
                        }
                        let got = {
                            let _g = gauges.blocked(Wait::Input);
                            rx.recv()
                        };
                        let Ok(p) = got else { break };
                        if work.stopped() {
                            break;
                        }
                        let _g = gauges.sending();
                        work.send(i, p)?;
                    }
                    Ok(())
                })
            });
        };
        let mut senders = work.usable();
        (0..senders).for_each(sender);
        // Streams opened during the run (`--streams auto`) get their sender as they open.
        while senders < work.streams() && processing.load(Ordering::Acquire) > 0 && !work.stopped() {
            std::thread::sleep(Duration::from_millis(10));
            let open = work.usable();
            (senders..open).for_each(sender);
            senders = open;
        }
        drop(send_rx);
    });
}

/// Counts a processor out when it ends, however it ends.
struct Gone<'a>(&'a AtomicUsize);

impl Drop for Gone<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}
