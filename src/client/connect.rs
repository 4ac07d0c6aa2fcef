//! Connecting and disconnecting: `connect` (blocking set-up, then CONNECT), `connect_async`
//! (a loop connects), `connect_srv`, `reconnect`, `disconnect`.

use std::thread;
use std::time::Instant;

use mio::unix::SourceFd;
use mio::Interest;

use super::config::{probe_connect, Options};
use super::conn::Conn;
use super::dispatch::call_slot;
use super::state::{Link, Retry, State};
use super::{Client, SOCKET};
use crate::network::{self, Attempt, NetStream};
use crate::options::ConnectOptions;
use crate::session::{Ended, Event, SocketEvent};
use crate::types::{CleanStart, LogLevel, ReasonCode};
use crate::{Error, Properties, Result};

impl Client {
    /// Connects to `host:port` (blocking: TCP/TLS/WebSocket set-up, then CONNECT is sent).
    /// `is_connected()` turns true when a loop has processed the CONNACK.
    pub fn connect(&self, host: &str, port: u16, keepalive: u16) -> Result<()> {
        self.connect_with(ConnectOptions {
            port,
            keepalive,
            ..ConnectOptions::new(host)
        })
    }

    fn store_connect_options(&self, o: ConnectOptions) -> Result<()> {
        if o.host.is_empty() {
            return Err(Error::invalid("host must not be empty"));
        }
        let mut st = self.inner.lock();
        let protocol = st.opts.protocol;
        if !protocol.is_v5() {
            if o.clean_start != CleanStart::FirstOnly {
                return Err(Error::invalid(
                    "clean_start applies only to MQTT 5.0; use clean_session",
                ));
            }
            if o.properties.as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(Error::invalid("properties are only used with MQTT 5.0"));
            }
        }
        if let Some(p) = &o.properties {
            // Reject properties that CONNECT cannot carry now, not at every reconnect.
            probe_connect(protocol, None, p.clone())?;
        }
        let opts = &mut st.opts;
        opts.servers.clear();
        opts.srv_domain = None;
        opts.transport = opts.base_transport;
        opts.host = Some(o.host);
        opts.port = o.port;
        opts.keepalive = o.keepalive;
        opts.bind_address = o.bind_address;
        opts.bind_port = o.bind_port;
        opts.clean_start = o.clean_start;
        opts.connect_props = o.properties;
        st.connected_once = false;
        st.sync_session();
        Ok(())
    }

    /// Connects with every option of Paho's `connect()` (bind address, clean start,
    /// MQTT 5 properties).
    pub fn connect_with(&self, options: ConnectOptions) -> Result<()> {
        self.store_connect_options(options)?;
        self.reconnect()
    }

    /// Connects to the broker named by the DNS SRV records of `domain` (`_mqtt._tcp.<domain>`,
    /// or `_secure-mqtt._tcp.<domain>` with TLS configured), trying the targets in RFC 2782
    /// order — by priority, then weighted random within a priority — until one connects.
    /// The connect timeout bounds the whole call: the look-up and every target tried.
    /// Every later attempt (the loop's reconnects, `reconnect()`) looks the records up
    /// again, so a changed answer is followed; if that look-up fails, the last target is
    /// tried. A later `connect`/`connect_servers` forgets the domain.
    /// Needs the `srv` feature (opt-in); without it, `Err(NotSupported)`.
    pub fn connect_srv(&self, domain: &str, keepalive: u16) -> Result<()> {
        if domain.is_empty() {
            return Err(Error::invalid("connect_srv needs a domain"));
        }
        let (secure, nameserver, deadline) = {
            let st = self.inner.lock();
            let deadline = crate::time::after(crate::time::now(), st.opts.connect_timeout);
            (st.opts.net.tls.is_some(), st.opts.srv_nameserver, deadline)
        };
        let candidates = network::srv::lookup(domain, secure, nameserver, deadline)?;
        let mut last = Error::Dns(format!("no usable SRV target for {domain}").into());
        for (host, port) in candidates {
            if crate::time::now() >= deadline {
                last = Error::Timeout;
                break;
            }
            match self.try_target(&host, port, keepalive, Some(deadline), "SRV target", |_| {}) {
                Ok(()) => {
                    // Reconnects look the records up again (open_connection).
                    self.inner.lock().opts.srv_domain = Some(domain.to_string());
                    return Ok(());
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Connects to the first server of `servers` that answers, trying them in order (each
    /// within the connect timeout), and keeps the list: when the connection is lost or a
    /// reconnect attempt fails, the next attempt goes to the next server (round robin, with
    /// the usual backoff). `host()` and `port()` — also inside `on_connect` — tell which
    /// server the client is on. Paho C's `serverURIs`; Paho Python and rumqttc have no
    /// counterpart. A later `connect`/`connect_async` forgets the list.
    pub fn connect_servers(&self, servers: &[crate::Server], keepalive: u16) -> Result<()> {
        if servers.is_empty() {
            return Err(Error::invalid("connect_servers needs at least one server"));
        }
        if let Some(s) = servers.iter().find(|s| s.host.is_empty()) {
            return Err(Error::invalid(format!(
                "connect_servers: an empty host (port {})",
                s.port
            )));
        }
        let mut last = Error::NoConnection;
        for (i, s) in servers.iter().enumerate() {
            let keep_list = |o: &mut Options| {
                o.servers = servers.to_vec();
                o.use_server(i);
            };
            match self.try_target(&s.host, s.port, keepalive, None, "server", keep_list) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// One target of `connect_srv` / `connect_servers`: stores its options (`adjust` adds
    /// to them), opens the connection, runs what it queued, and logs a failure.
    fn try_target(
        &self,
        host: &str,
        port: u16,
        keepalive: u16,
        deadline: Option<Instant>,
        what: &str,
        adjust: impl FnOnce(&mut Options),
    ) -> Result<()> {
        let options = ConnectOptions {
            port,
            keepalive,
            ..ConnectOptions::new(host)
        };
        let attempt = self.store_connect_options(options).and_then(|()| {
            adjust(&mut self.inner.lock().opts);
            self.open_connection(deadline)
        });
        self.after_op();
        if let Err(e) = &attempt {
            self.log(
                LogLevel::Warning,
                &format!("{what} {host}:{port} failed: {e}"),
            );
        }
        attempt
    }

    /// `connect_servers` without connecting: a loop connects, starting with the first server.
    pub fn connect_servers_async(&self, servers: &[crate::Server], keepalive: u16) -> Result<()> {
        let first = servers
            .first()
            .ok_or_else(|| Error::invalid("connect_servers_async needs at least one server"))?;
        self.connect_async(&first.host, first.port, keepalive)?;
        let mut st = self.inner.lock();
        st.opts.servers = servers.to_vec();
        st.opts.use_server(0);
        Ok(())
    }

    /// Stores the connection parameters; a loop (`loop_start`, `loop_forever`, `loop_once`)
    /// connects.
    pub fn connect_async(&self, host: &str, port: u16, keepalive: u16) -> Result<()> {
        self.connect_async_with(ConnectOptions {
            port,
            keepalive,
            ..ConnectOptions::new(host)
        })
    }

    /// `connect_async` with every connect option.
    pub fn connect_async_with(&self, options: ConnectOptions) -> Result<()> {
        self.store_connect_options(options)?;
        let mut st = self.inner.lock();
        match &mut st.link {
            // After a disconnect() still being written: connect again once it is closed.
            Link::Open(c) if c.closing => c.reconnect_after_close = true,
            // A connection, or an attempt, is already there.
            Link::Open(_) | Link::Opening { .. } | Link::Shutdown => {}
            Link::Idle | Link::Waiting(_) => st.link = Link::Waiting(Retry::Now),
        }
        drop(st);
        self.inner.wake();
        Ok(())
    }

    /// Connects again with the stored parameters, closing the current connection, if any,
    /// as Paho does: without `on_disconnect`, with `on_socket_close` for its socket.
    pub fn reconnect(&self) -> Result<()> {
        let r = self.open_connection(None);
        self.after_op();
        r
    }

    /// Opens a connection: `on_pre_connect` runs first (what it changes applies to this
    /// attempt), then the blocking set-up runs without the lock (the link is `Opening`
    /// meanwhile), then the connection is installed and CONNECT written.
    pub(super) fn open_connection(&self, deadline: Option<Instant>) -> Result<()> {
        let attempt = {
            let mut st = self.inner.lock();
            if matches!(st.link, Link::Shutdown) {
                return Err(Error::state("the client is shut down"));
            }
            if st.opts.host.is_none() {
                return Err(Error::state(
                    "reconnect() before connect(): no host to connect to",
                ));
            }
            if st.link.is_opening() {
                return Err(Error::state("a connection attempt is already in progress"));
            }
            // As Paho's reconnect: the old socket's callbacks run, no on_disconnect.
            self.inner.close_conn(&mut st, Ended::SocketOnly);
            // One deadline for the whole attempt: DNS, TCP, proxy, TLS, WebSocket, CONNACK.
            let deadline = deadline
                .unwrap_or_else(|| crate::time::after(crate::time::now(), st.opts.connect_timeout));
            let attempt = Attempt::start(deadline);
            st.link = Link::Opening {
                attempt: attempt.clone(),
                by: thread::current().id(),
            };
            attempt
        };
        let slot = self.inner.callbacks().on_pre_connect.clone();
        call_slot(&self.inner, self, "on_pre_connect", &slot, |f| f(self));
        let (host, port, transport, bind_address, bind_port, net, max_packet, srv) = {
            let st = self.inner.lock();
            let (Link::Opening { .. }, Some(host)) = (&st.link, st.opts.host.clone()) else {
                attempt.cancel();
                return Err(Error::state("disconnect() was called while connecting"));
            };
            let o = &st.opts;
            let srv = o
                .srv_domain
                .clone()
                .map(|d| (d, o.net.tls.is_some(), o.srv_nameserver));
            (
                host,
                o.port,
                o.transport,
                o.bind_address.clone(),
                o.bind_port,
                o.net.clone(),
                o.max_incoming_packet,
                srv,
            )
        };
        // After connect_srv, every attempt asks DNS again: the records may name another
        // broker now. Should the look-up fail, the last target is tried: the look-up gets
        // half of the attempt's time, so that a silent DNS server leaves time for it.
        let targets = match srv {
            None => vec![(host.clone(), port)],
            Some((domain, secure, nameserver)) => {
                let now = crate::time::now();
                let half = attempt.deadline().saturating_duration_since(now) / 2;
                match network::srv::lookup(&domain, secure, nameserver, now + half) {
                    Ok(found) => found,
                    Err(e) => {
                        self.log(
                            LogLevel::Warning,
                            &format!("SRV look-up of {domain} failed ({e}); trying {host}:{port}"),
                        );
                        vec![(host.clone(), port)]
                    }
                }
            }
        };
        let mut opened = Err(Error::NoConnection);
        let mut reached = (host, port);
        for (target_host, target_port) in targets {
            if crate::time::now() >= attempt.deadline() {
                opened = Err(Error::Timeout);
                break;
            }
            self.log(
                LogLevel::Debug,
                &format!("Connecting to {target_host}:{target_port}"),
            );
            opened = network::open(&network::ConnectParams {
                host: &target_host,
                port: target_port,
                transport,
                bind_address: bind_address.as_deref(),
                bind_port,
                attempt: &attempt,
                config: &net,
                max_packet,
            });
            reached = (target_host, target_port);
            match &opened {
                Ok(_) => break,
                Err(e) => self.log(
                    LogLevel::Warning,
                    &format!("Connecting to {}:{} failed: {e}", reached.0, reached.1),
                ),
            }
        }
        let mut st = self.inner.lock();
        let still_wanted = matches!(&st.link, Link::Opening { attempt: a, .. } if a.same(&attempt));
        let stream = match opened {
            Ok(s) => s,
            Err(e) => {
                if still_wanted {
                    st.link = Link::Waiting(Retry::Manual);
                }
                return Err(e);
            }
        };
        if !still_wanted {
            return Err(Error::state("disconnect() was called while connecting"));
        }
        // host() and port() tell the target reached (an SRV answer may have changed it).
        st.opts.host = Some(reached.0);
        st.opts.port = reached.1;
        self.install(&mut st, stream, attempt.deadline())
    }

    /// Makes `stream` the open connection and queues CONNECT.
    fn install(&self, st: &mut State, stream: Box<dyn NetStream>, deadline: Instant) -> Result<()> {
        st.flow.write_blocked = false;
        st.link = Link::Waiting(Retry::Manual);
        let fd = stream.raw_fd();
        self.inner.registry.register(
            &mut SourceFd(&fd),
            SOCKET,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let connect = st.opts.connect_packet(st.connected_once);
        let id = self.inner.new_conn_id();
        st.link = Link::Open(Box::new(Conn::new(id, stream, fd)));
        if let Err(e) = st
            .session
            .start_connect(&connect, id, crate::time::now(), deadline)
        {
            self.inner.close_conn(st, Ended::Quiet);
            return Err(e);
        }
        st.session.push_event(Event::Socket(SocketEvent::Open, fd));
        if let Err(e) = self.inner.flush(st) {
            // Like every failed attempt, the caller reports `e` (once).
            self.inner.close_conn(st, Ended::SocketOnly);
            return Err(e);
        }
        self.inner.cond.notify_all();
        self.inner.wake();
        Ok(())
    }

    /// Sends DISCONNECT and closes the connection once it is written; `on_disconnect` then
    /// reports `SUCCESS`. Stops the reconnect attempts. Offline, it only stops them and
    /// returns `Err(NoConnection)` (as Paho's `MQTT_ERR_NO_CONN`).
    pub fn disconnect(&self) -> Result<()> {
        self.disconnect_with(ReasonCode::NORMAL_DISCONNECTION, Properties::default())
    }

    /// `disconnect` with an MQTT 5 reason code and properties.
    pub fn disconnect_with(&self, reason: ReasonCode, properties: Properties) -> Result<()> {
        let mut st = self.inner.lock();
        st.close_channel();
        let r = match st.link {
            Link::Open(_) => {
                let (reason, props) = if st.opts.protocol.is_v5() {
                    (reason, properties)
                } else {
                    (ReasonCode::SUCCESS, Properties::default())
                };
                st.session.disconnect(reason, props).map(|()| {
                    if let Some(c) = st.link.conn_mut() {
                        c.closing = true;
                        self.inner.note_disconnect(c.id);
                    }
                    match self.inner.flush(&mut st) {
                        Ok(()) if st.session.pending_bytes() > 0 => {}
                        _ => self.inner.close_conn(&mut st, Ended::User),
                    }
                })
            }
            Link::Waiting(_) | Link::Opening { .. } => {
                st.link.cancel_attempt();
                st.link = Link::Idle;
                Err(Error::NoConnection)
            }
            Link::Idle | Link::Shutdown => Err(Error::NoConnection),
        };
        self.inner.cond.notify_all();
        drop(st);
        self.inner.wake();
        self.after_op();
        r
    }

    /// True once a loop has processed a successful CONNACK, until the connection ends or
    /// `disconnect()` is called.
    pub fn is_connected(&self) -> bool {
        self.inner.lock().connected()
    }
}
