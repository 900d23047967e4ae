//! Several event loops on several threads, sharing listeners.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::event_loop::EventLoop;
use crate::event_loop::LoopParts;
use crate::handle::Handle;
use crate::handler::Handler;
use crate::net;
use crate::options::Options;

/// N event loops on N threads (one per CPU by default), each with its own
/// handler, serving the same listeners: every loop has its own socket on
/// each address (`SO_REUSEPORT`), so the kernel spreads incoming
/// connections over the loops and no loop hands sockets to another.
///
/// ```no_run
/// use ws_mio::{Ctx, ConnId, Handler, LoopGroup};
/// use ws_proto::Message;
///
/// struct Echo;
/// impl Handler for Echo {
///     fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
///         let _ = ctx.send(id, m.kind, m.data);
///     }
/// }
///
/// let group = LoopGroup::builder()
///     .loops(2)
///     .listen("127.0.0.1:0".parse().unwrap())
///     .spawn(|_loop_index| Echo)?;
/// println!("listening on {}", group.local_addr().unwrap());
/// group.join()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct LoopGroup {
    handle: Handle,
    threads: Vec<JoinHandle<io::Result<()>>>,
    addrs: Vec<SocketAddr>,
}

/// Builds a [`LoopGroup`].
#[derive(Debug)]
pub struct GroupBuilder {
    loops: usize,
    options: Options,
    listen: Vec<(SocketAddr, Option<Arc<rustls::ServerConfig>>)>,
    name: String,
    reuse_port: Option<bool>,
}

impl LoopGroup {
    /// A builder: one loop per available CPU, default [`Options`], no
    /// listener.
    pub fn builder() -> GroupBuilder {
        GroupBuilder {
            loops: std::thread::available_parallelism().map_or(1, |n| n.get()),
            options: Options::default(),
            listen: Vec::new(),
            name: "ws-mio".to_string(),
            reuse_port: None,
        }
    }

    /// A handle reaching every loop.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The bound addresses, in the order they were added.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The first bound address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addrs.first().copied()
    }

    /// Graceful shutdown of every loop (see [`Handle::shutdown`]); then
    /// [`join`](Self::join).
    pub fn shutdown(&self, grace: Duration) {
        self.handle.shutdown(grace);
    }

    /// Waits for every loop to return; the first error wins.
    pub fn join(mut self) -> io::Result<()> {
        self.join_all()
    }

    fn join_all(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        for t in self.threads.drain(..) {
            let r = t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("an event loop thread panicked")));
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

impl Drop for LoopGroup {
    /// Stops the loops that are still running and waits for them.
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.handle.stop();
            let _ = self.join_all();
        }
    }
}

impl GroupBuilder {
    /// Number of loops (threads), at least 1.
    pub fn loops(mut self, n: usize) -> Self {
        self.loops = n.clamp(1, usize::from(u16::MAX));
        self
    }

    /// Options of every loop (clones share the buffer pool).
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Serves `ws://` on `addr` (port 0 picks one; all loops share it).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen.push((addr, None));
        self
    }

    /// Serves `wss://` on `addr`.
    pub fn listen_tls(mut self, addr: SocketAddr, tls: Arc<rustls::ServerConfig>) -> Self {
        self.listen.push((addr, Some(tls)));
        self
    }

    /// Whether listeners set `SO_REUSEPORT`. By default they do when there
    /// are several loops (where the platform has it). Turn it on with one
    /// loop to let several processes serve the same address.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = Some(on);
        self
    }

    /// Thread name prefix (default `ws-mio`; threads are `ws-mio-0`, ...).
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Binds the listeners and starts the loops; `factory(i)` makes loop
    /// `i`'s handler on that loop's thread.
    pub fn spawn<H, F>(self, factory: F) -> io::Result<LoopGroup>
    where
        H: Handler + 'static,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let n = self.loops;
        let mut parts = Vec::with_capacity(n);
        for _ in 0..n {
            parts.push(LoopParts::new(&self.options)?);
        }
        let handle = Handle::new(parts.iter().map(|p| p.remote.clone()).collect());
        // Listeners: per address, one socket per loop.
        let mut per_loop: Vec<Vec<(std::net::TcpListener, Option<Arc<rustls::ServerConfig>>)>> =
            (0..n).map(|_| Vec::new()).collect();
        let mut addrs = Vec::new();
        for (addr, tls) in &self.listen {
            let reuse = net::REUSE_PORT && self.reuse_port.unwrap_or(n > 1);
            let first = net::bind_listener(*addr, self.options.backlog, reuse)?;
            let bound = first.local_addr()?;
            addrs.push(bound);
            for (i, list) in per_loop.iter_mut().enumerate() {
                let sock = match i {
                    0 => first.try_clone()?,
                    _ if reuse => net::bind_listener(bound, self.options.backlog, true)?,
                    _ => first.try_clone()?,
                };
                list.push((sock, tls.clone()));
            }
        }
        let factory = Arc::new(factory);
        let mut threads = Vec::with_capacity(n);
        for (i, (p, listeners)) in parts.into_iter().zip(per_loop).enumerate() {
            let factory = factory.clone();
            let loop_handle = handle.clone();
            let options = self.options.clone();
            let index = u16::try_from(i).unwrap_or(u16::MAX);
            let t = std::thread::Builder::new()
                .name(format!("{}-{i}", self.name))
                .spawn(move || -> io::Result<()> {
                    let mut ev = EventLoop::from_parts(index, p, loop_handle, options, factory(i));
                    for (l, tls) in listeners {
                        ev.add_listener(l, tls)?;
                    }
                    ev.run()
                });
            match t {
                Ok(t) => threads.push(t),
                Err(e) => {
                    let mut g = LoopGroup {
                        handle,
                        threads,
                        addrs,
                    };
                    g.handle.stop();
                    let _ = g.join_all();
                    return Err(e);
                }
            }
        }
        Ok(LoopGroup {
            handle,
            threads,
            addrs,
        })
    }
}
