//! Helpers shared by the loopback tests: servers on 127.0.0.1:0, clients, payloads, bounded
//! waits, and a stream wrapper that counts writes.

#![allow(dead_code, clippy::unwrap_used, clippy::disallowed_methods)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use ws_tokio::{ClientRequest, Config, Decision, UpgradeRequest, WebSocketStream};

/// Every wait in the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(20);

/// Awaits `f`, failing the test after [`WAIT`].
pub async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no result within {WAIT:?}"),
    }
}

/// Accepts connections on 127.0.0.1:0 with `cfg` and `decide`, handing each accepted
/// stream to `handler` in its own task; returns the address.
pub async fn server<H, Fut>(
    cfg: Config,
    decide: fn(&UpgradeRequest) -> Decision,
    handler: H,
) -> SocketAddr
where
    H: Fn(Result<WebSocketStream<TcpStream>, ws_tokio::Error>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tcp.set_nodelay(true).unwrap();
            let cfg = cfg.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let ws = ws_tokio::accept_with(tcp, cfg, decide).await;
                handler(ws).await;
            });
        }
    });
    addr
}

/// An echo server (each message sent back as it came).
pub async fn echo_server(cfg: Config) -> SocketAddr {
    server(
        cfg,
        |_| Decision::accept(),
        |ws| async move {
            let Ok(mut ws) = ws else { return };
            while let Some(Ok(m)) = ws.next().await {
                if ws.send(m).await.is_err() {
                    return;
                }
            }
        },
    )
    .await
}

/// A client connected to `addr` with `cfg`.
pub async fn connect(addr: SocketAddr, cfg: Config) -> WebSocketStream<TcpStream> {
    connect_to(addr, ClientRequest::new(addr.to_string(), "/"), cfg)
        .await
        .unwrap()
}

/// A client connected to `addr` with `request` and `cfg`.
pub async fn connect_to(
    addr: SocketAddr,
    request: ClientRequest,
    cfg: Config,
) -> Result<WebSocketStream<TcpStream>, ws_tokio::Error> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    bounded("handshake", ws_tokio::client(tcp, &request, cfg)).await
}

/// `size` bytes of text-safe, mildly compressible data.
pub fn payload(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| b"abcdefghij klmnopqrstuvwxyz 0123456789\n"[(i * 7 + i / 13) % 39])
        .collect()
}

/// A stream that counts the write calls that wrote something.
pub struct CountWrites<S> {
    pub inner: S,
    pub writes: Arc<AtomicUsize>,
}

impl<S> CountWrites<S> {
    pub fn new(inner: S) -> (Self, Arc<AtomicUsize>) {
        let writes = Arc::new(AtomicUsize::new(0));
        (
            CountWrites {
                inner,
                writes: writes.clone(),
            },
            writes,
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CountWrites<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountWrites<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1, and the server configuration
/// presenting it (built by ws-net, like every other TLS configuration here).
pub struct Cert {
    pub der: rustls::pki_types::CertificateDer<'static>,
    pub pem: String,
    /// The private key, PEM (for a peer in another process).
    pub key_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

pub fn cert() -> Cert {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let ck = rcgen::generate_simple_self_signed(names).unwrap();
    let server = ws_net::tls::server_config_from_pem(
        ck.cert.pem().as_bytes(),
        ck.signing_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    Cert {
        der: ck.cert.der().clone(),
        pem: ck.cert.pem(),
        key_pem: ck.signing_key.serialize_pem(),
        server,
    }
}

/// Runs `serve` with a listener on 127.0.0.1:0 on a thread of its own, in a current-thread
/// runtime: everything the server does (the runtime, the IO driver, every task) happens on
/// that one thread, which the counting tests measure. `first` runs on the thread before the
/// runtime is built. Returns the listener's address and the thread.
pub fn server_thread<F, Fut>(first: fn(), serve: F) -> (SocketAddr, std::thread::JoinHandle<()>)
where
    F: FnOnce(TcpListener) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        first();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            serve(listener).await;
        });
    });
    (rx.recv().unwrap(), t)
}
