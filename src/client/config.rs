//! What the user configured ([`Options`]: read when a connection starts), with the setters
//! and getters that mirror Paho's.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::state::State;
use super::{Client, ClientBuilder};
use crate::codec::{self, Connect, LastWill};
use crate::network::{self, NetConfig};
use crate::topic::validate_topic_name;
use crate::types::{CleanStart, Protocol, QoS, Transport};
use crate::{Error, Properties, Result};

/// Every option of the client. Setters change it; a connection reads it when it starts.
pub(super) struct Options {
    pub client_id: String,
    pub clean_session: bool,
    pub protocol: Protocol,
    pub transport: Transport,
    pub manual_ack: bool,
    pub reconnect_on_failure: bool,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    pub will: Option<LastWill>,
    /// Where the last `connect`/`connect_async` pointed (`None` before the first).
    pub host: Option<String>,
    pub port: u16,
    pub keepalive: u16,
    pub bind_address: Option<String>,
    pub bind_port: u16,
    pub clean_start: CleanStart,
    pub connect_props: Option<Properties>,
    /// `authentication_set`: Authentication Method and Data for CONNECT, over those of
    /// `connect_props`.
    pub auth: Option<(String, Option<Vec<u8>>)>,
    /// Transport settings: TLS, WebSocket path and headers, proxy, TCP_NODELAY.
    pub net: NetConfig,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub connect_timeout: Duration,
    pub max_outgoing_bytes: usize,
    pub bridge: bool,
    pub srv_nameserver: Option<SocketAddr>,
    /// The domain of `connect_srv`, looked up again at every attempt (None otherwise).
    pub srv_domain: Option<String>,
    /// In-flight window for QoS 1/2 (0 = unlimited).
    pub max_inflight: u16,
    /// Stored outgoing QoS 1/2 messages (0 = unlimited).
    pub max_queued: usize,
    /// Largest packet accepted from the broker.
    pub max_incoming_packet: usize,
    /// `max_incoming_packet_size_set` was called: MQTT 5 CONNECTs announce the limit as
    /// Maximum Packet Size.
    pub max_incoming_set: bool,
    /// Renew subscriptions after a CONNACK without a session (`resubscribe_set`).
    pub resubscribe: bool,
    /// Outgoing topic aliases the client assigns itself (`auto_topic_alias_set`; 0 = off).
    pub auto_aliases: u16,
    /// The server list of `connect_servers` (empty after a plain `connect`), the entry in
    /// use, and the client's own transport (for entries without one).
    pub servers: Vec<crate::Server>,
    /// Follow a broker's Server Reference (0x9C / 0x9D) on the next attempt.
    pub follow_redirects: bool,
    pub server_idx: usize,
    pub base_transport: Transport,
}

/// The default largest packet accepted from the broker: 16 MiB, so that a broker cannot make
/// a client buffer a 256 MiB packet (MQTT's maximum) it never asked for. Larger messages need
/// `max_incoming_packet_size_set`.
pub const DEFAULT_MAX_INCOMING_PACKET: usize = 16 * 1024 * 1024;

/// 64 random bits (std's randomly keyed hasher over the clock): for ids, not for secrets.
pub(super) fn random_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

fn random_client_id() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    const CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(22);
    let mut x = random_u64();
    for i in 0..22 {
        if i % 10 == 0 {
            let mut h = RandomState::new().build_hasher();
            h.write_u64(x);
            x = h.finish();
        }
        out.push(CHARS[(x % 62) as usize] as char);
        x /= 62;
    }
    out
}

impl Options {
    /// The defaults, with what the builder chose.
    pub(super) fn new(b: &ClientBuilder) -> Options {
        let client_id = if b.client_id.is_empty() && b.protocol == Protocol::V31 {
            random_client_id()
        } else {
            b.client_id.clone()
        };
        Options {
            client_id,
            clean_session: b.clean_session.unwrap_or(true),
            protocol: b.protocol,
            transport: b.transport,
            manual_ack: b.manual_ack,
            reconnect_on_failure: b.reconnect_on_failure,
            username: None,
            password: None,
            will: None,
            host: None,
            port: 1883,
            keepalive: 60,
            bind_address: None,
            bind_port: 0,
            clean_start: CleanStart::FirstOnly,
            connect_props: None,
            auth: None,
            net: NetConfig {
                nodelay: true,
                ..Default::default()
            },
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(5),
            max_outgoing_bytes: 1024 * 1024,
            bridge: false,
            srv_nameserver: None,
            srv_domain: None,
            max_inflight: 20,
            max_queued: 0,
            max_incoming_packet: DEFAULT_MAX_INCOMING_PACKET,
            max_incoming_set: false,
            resubscribe: false,
            auto_aliases: 0,
            servers: Vec::new(),
            follow_redirects: false,
            server_idx: 0,
            base_transport: b.transport,
        }
    }

    /// Makes server `i` of the list the one the next attempt goes to.
    pub(super) fn use_server(&mut self, i: usize) {
        if let Some(s) = self.servers.get(i) {
            self.server_idx = i;
            self.host = Some(s.host.clone());
            self.port = s.port;
            self.transport = s.transport.unwrap_or(self.base_transport);
        }
    }

    /// The CONNECT of the next connection. `connected_once`: a CONNACK succeeded since the
    /// last `connect()` (MQTT 5 `CleanStart::FirstOnly` then stops asking for a clean start).
    pub(super) fn connect_packet(&self, connected_once: bool) -> Connect {
        let v5 = self.protocol.is_v5();
        let clean = if v5 {
            match self.clean_start {
                CleanStart::Always => true,
                CleanStart::Never => false,
                CleanStart::FirstOnly => !connected_once,
            }
        } else {
            self.clean_session
        };
        Connect {
            protocol: self.protocol,
            clean_start: clean,
            keep_alive: self.keepalive,
            client_id: self.client_id.clone(),
            will: self.will.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            properties: if v5 {
                let mut p = self.connect_props.clone().unwrap_or_default();
                if let Some((method, data)) = &self.auth {
                    p.authentication_method = Some(method.clone());
                    p.authentication_data = data.clone();
                }
                if self.max_incoming_set && p.maximum_packet_size.is_none() {
                    p.maximum_packet_size =
                        Some(u32::try_from(self.max_incoming_packet).unwrap_or(u32::MAX));
                }
                p
            } else {
                Properties::default()
            },
            bridge: self.bridge,
        }
    }
}

/// Encodes a CONNECT with `will` and `properties` to refuse what it cannot carry at once
/// rather than at every reconnect.
pub(super) fn probe_connect(
    protocol: Protocol,
    will: Option<LastWill>,
    properties: Properties,
) -> Result<()> {
    let probe = codec::Packet::Connect(Connect {
        protocol,
        clean_start: true,
        keep_alive: 0,
        client_id: String::new(),
        will,
        username: None,
        password: None,
        properties,
        bridge: false,
    });
    probe.encode(protocol, &mut Vec::new())
}

impl Client {
    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.inner.lock())
    }

    /// The client id (after an MQTT 5 CONNACK with an Assigned Client Identifier, that id).
    pub fn client_id(&self) -> String {
        self.inner.lock().opts.client_id.clone()
    }
    /// The broker host of the last connect.
    pub fn host(&self) -> String {
        self.inner.lock().opts.host.clone().unwrap_or_default()
    }
    /// The broker port of the last connect.
    pub fn port(&self) -> u16 {
        self.inner.lock().opts.port
    }
    /// The keepalive in seconds: the one given to `connect`, or, while connected to an MQTT 5
    /// broker whose CONNACK carried a Server Keep Alive, the broker's value (which the client
    /// then follows).
    pub fn keepalive(&self) -> u16 {
        let st = self.inner.lock();
        if st.session_up() {
            st.session.keepalive_secs()
        } else {
            st.opts.keepalive
        }
    }
    /// The protocol version.
    pub fn protocol(&self) -> Protocol {
        self.inner.lock().opts.protocol
    }
    /// The transport.
    pub fn transport(&self) -> Transport {
        self.inner.lock().opts.transport
    }
    /// The user name set by `username_pw_set`.
    pub fn username(&self) -> Option<String> {
        self.inner.lock().opts.username.clone()
    }
    /// Outgoing QoS 1/2 messages stored and not yet sent on the current connection (waiting
    /// for the in-flight window, or for a connection).
    pub fn queued_messages(&self) -> usize {
        let st = self.inner.lock();
        st.session.outgoing_len() - st.session.inflight_len()
    }
    /// Outgoing QoS 1/2 messages sent on the current connection and not yet acknowledged.
    pub fn inflight_messages(&self) -> usize {
        self.inner.lock().session.inflight_len()
    }
    /// Bytes waiting to be written to the socket.
    pub fn pending_bytes(&self) -> usize {
        self.inner.lock().session.pending_bytes()
    }
    /// Counters for monitoring: messages sent and received per QoS, connections (and so
    /// reconnects), bytes.
    pub fn stats(&self) -> crate::Stats {
        self.inner.lock().session.stats()
    }
    /// The connect timeout (Paho's `connect_timeout` property; default 5 s).
    pub fn connect_timeout(&self) -> Duration {
        self.inner.lock().opts.connect_timeout
    }
    /// The in-flight window for QoS 1/2 (Paho's `max_inflight_messages`; 0 = unlimited).
    pub fn max_inflight_messages(&self) -> u16 {
        self.inner.lock().opts.max_inflight
    }
    /// The limit of stored outgoing QoS 1/2 messages (Paho's `max_queued_messages`; 0 =
    /// unlimited).
    pub fn max_queued_messages(&self) -> usize {
        self.inner.lock().opts.max_queued
    }
    /// The will's topic, if a will is set (Paho's `will_topic`).
    pub fn will_topic(&self) -> Option<String> {
        self.inner
            .lock()
            .opts
            .will
            .as_ref()
            .map(|w| w.topic.clone())
    }
    /// The will's payload, if a will is set (Paho's `will_payload`).
    pub fn will_payload(&self) -> Option<Vec<u8>> {
        self.inner
            .lock()
            .opts
            .will
            .as_ref()
            .map(|w| w.payload.clone())
    }

    /// Sets the MQTT 5 Authentication Method and initial Authentication Data of enhanced
    /// authentication for the CONNECT of every following attempt, over those of
    /// `connect_with`'s properties (which a later `connect_with` does not reset). Called from
    /// `on_pre_connect`, it gives each attempt fresh data, as a method with a nonce (SCRAM)
    /// needs: what `on_pre_connect` sets applies to the attempt it runs for. The broker's
    /// answers reach [`Client::on_auth`].
    ///
    /// `Err(InvalidArgument)` for MQTT 3.x or an empty method. Not in Paho Python.
    ///
    /// ```no_run
    /// # use mqtt_sync::{Client, Protocol};
    /// # fn main() -> mqtt_sync::Result<()> {
    /// let client = Client::builder().protocol(Protocol::V5).build()?;
    /// client.on_pre_connect(|c| {
    ///     let first = b"n,,n=alice,r=fresh-nonce"; // a new one per attempt
    ///     let _ = c.authentication_set("SCRAM-SHA-256", Some(first));
    /// });
    /// # Ok(())
    /// # }
    /// ```
    pub fn authentication_set(&self, method: &str, data: Option<&[u8]>) -> Result<()> {
        if method.is_empty() {
            return Err(Error::invalid(
                "the Authentication Method must not be empty",
            ));
        }
        let auth = (method.to_string(), data.map(<[u8]>::to_vec));
        // Refuse what CONNECT cannot carry (a method over 65,535 bytes) now.
        let probe = Properties {
            authentication_method: Some(auth.0.clone()),
            authentication_data: auth.1.clone(),
            ..Properties::default()
        };
        let mut st = self.inner.lock();
        if !st.opts.protocol.is_v5() {
            return Err(Error::invalid(
                "enhanced authentication needs MQTT 5.0: build the client with Protocol::V5",
            ));
        }
        probe_connect(st.opts.protocol, None, probe)?;
        st.opts.auth = Some(auth);
        Ok(())
    }

    /// Removes what [`Client::authentication_set`] set: the CONNECT carries the
    /// Authentication Method and Data of `connect_with`'s properties again, if any.
    pub fn authentication_clear(&self) {
        self.inner.lock().opts.auth = None;
    }

    /// Sets user name and optional password for the next connect.
    pub fn username_pw_set(&self, username: &str, password: Option<&str>) -> Result<()> {
        self.with_state(|st| {
            st.opts.username = Some(username.to_string());
            st.opts.password = password.map(|p| p.as_bytes().to_vec());
        });
        Ok(())
    }

    /// Sets the will message for the next connect.
    pub fn will_set(
        &self,
        topic: &str,
        payload: impl AsRef<[u8]>,
        qos: QoS,
        retain: bool,
    ) -> Result<()> {
        self.will_set_with_properties(topic, payload, qos, retain, Properties::default())
    }

    /// Sets the will message with MQTT 5 will properties.
    pub fn will_set_with_properties(
        &self,
        topic: &str,
        payload: impl AsRef<[u8]>,
        qos: QoS,
        retain: bool,
        properties: Properties,
    ) -> Result<()> {
        validate_topic_name(topic)?;
        let payload = payload.as_ref();
        if payload.len() > 65535 {
            return Err(Error::PayloadSize(
                "a will payload is at most 65535 bytes".into(),
            ));
        }
        let will = LastWill {
            topic: topic.to_string(),
            payload: payload.to_vec(),
            qos,
            retain,
            properties,
        };
        // Validate the will properties now rather than at connect time.
        let mut st = self.inner.lock();
        if st.opts.protocol.is_v5() && !will.properties.is_empty() {
            probe_connect(st.opts.protocol, Some(will.clone()), Properties::default())?;
        }
        st.opts.will = Some(will);
        Ok(())
    }

    /// Removes the will message.
    pub fn will_clear(&self) -> Result<()> {
        self.with_state(|st| st.opts.will = None);
        Ok(())
    }

    fn locked_while_connected(&self, what: &str, f: impl FnOnce(&mut State)) -> Result<()> {
        let mut st = self.inner.lock();
        if st.link.is_open() {
            return Err(Error::state(format!(
                "{what} cannot be changed while a connection is open"
            )));
        }
        f(&mut st);
        st.sync_session();
        Ok(())
    }

    /// In-flight window for QoS 1/2 messages (default 20, 0 = unlimited). Locked while connected.
    pub fn max_inflight_messages_set(&self, n: u16) -> Result<()> {
        self.locked_while_connected("max_inflight_messages", |st| st.opts.max_inflight = n)
    }

    /// Limit of stored outgoing QoS 1/2 messages (default 0 = unlimited); past it `publish`
    /// returns `Err(QueueSize)`. Locked while connected.
    pub fn max_queued_messages_set(&self, n: usize) -> Result<()> {
        self.locked_while_connected("max_queued_messages", |st| st.opts.max_queued = n)
    }

    /// Time allowed for one whole connection attempt (default 5 s): one deadline covers the
    /// DNS look-up (SRV included), TCP, the proxy's reply, the TLS handshake, the WebSocket
    /// upgrade and the CONNACK, however slowly a peer drips its bytes. `disconnect()`,
    /// `loop_stop()` and `reinitialise()` stop an attempt in progress. Locked while connected.
    pub fn connect_timeout_set(&self, timeout: Duration) -> Result<()> {
        if timeout.is_zero() {
            return Err(Error::invalid("the connect timeout must be positive"));
        }
        self.locked_while_connected("connect_timeout", |st| st.opts.connect_timeout = timeout)
    }

    /// Bytes that may wait for the socket before `publish` blocks (with a loop thread) —
    /// default 1 MiB.
    pub fn max_outgoing_bytes_set(&self, n: usize) -> Result<()> {
        if n == 0 {
            return Err(Error::invalid("max_outgoing_bytes must be positive"));
        }
        self.with_state(|st| st.opts.max_outgoing_bytes = n);
        Ok(())
    }

    /// Largest packet accepted from the broker (default 16 MiB, [`DEFAULT_MAX_INCOMING_PACKET`];
    /// MQTT's maximum is 256 MiB). A bigger one closes the connection with a protocol error
    /// (MQTT 5: DISCONNECT 0x95) before its payload is buffered; the limit also bounds
    /// WebSocket frames. With MQTT 5 the next CONNECTs announce it as Maximum Packet Size (unless
    /// the `connect_with` properties carry one), so the broker drops a larger message for this
    /// client instead of sending it again after every reconnect.
    pub fn max_incoming_packet_size_set(&self, n: usize) -> Result<()> {
        if n < 2 {
            return Err(Error::invalid(
                "the maximum packet size must be at least 2 bytes",
            ));
        }
        self.with_state(|st| {
            st.opts.max_incoming_packet = n;
            st.opts.max_incoming_set = true;
            st.sync_session();
        });
        Ok(())
    }

    /// Opt-in persistence (default off: the session state lives in memory, as in Paho Python):
    /// outgoing QoS 1/2 messages and incoming QoS 2 messages not yet released are written to
    /// `store` as their state changes, so that a client restarted after a crash — with the
    /// same client id and the same store — resumes them. See [`crate::persistence`].
    ///
    /// Call it before `connect()` and before the first QoS 1/2 `publish`; otherwise
    /// `Err(InvalidState)`. It loads the store at once: its outgoing messages join the queue
    /// (on `connect`, after the CONNACK, they are sent again with DUP set — a QoS 2 message
    /// past PUBREC with PUBREL only; they have no `MessageInfo`, `on_publish` reports their
    /// ids) and its incoming QoS 2 messages wait for the broker's PUBREL, then reach
    /// `on_message` once. A store that cannot be loaded gives `Err(Persistence)` and is not
    /// attached. `reinitialise()` detaches the store (what it holds stays there).
    ///
    /// Sessions: the stored state matters when the broker resumes the session
    /// (`clean_session(false)`, or MQTT 5 `CleanStart::Never`/`FirstOnly` with a Session
    /// Expiry Interval). When a CONNACK says no session is present, the stored outgoing
    /// messages are still sent (as the in-memory queue is after any reconnect; to the broker
    /// they are new publishes, and a QoS 2 message past PUBREC ends at the broker's PUBCOMP),
    /// and the stored incoming QoS 2 messages are dropped, as in memory.
    ///
    /// Failures of the store are never silent: a `publish` whose record cannot be written
    /// returns `Err(Persistence)` and queues nothing; a record the receive path needs (an
    /// incoming QoS 2 message before its PUBREC, a QoS 2 message reaching PUBREC) that cannot
    /// be written closes the connection (`on_disconnect` with `UNSPECIFIED_ERROR`, the error
    /// logged) without acknowledging, so the broker sends it again after the reconnect; a
    /// record that cannot be removed is logged as an error (the message may be sent once more
    /// after a restart); a store whose [`flush`](crate::persistence::Persistence::flush)
    /// fails (a [`SyncPolicy::BeforeSend`](crate::persistence::SyncPolicy::BeforeSend) file
    /// that cannot sync) closes the connection before anything is written (`on_disconnect`
    /// with `UNSPECIFIED_ERROR`; for the CONNECT the attempt fails: `on_connect_fail` from a
    /// loop, `Err` from `connect`), and the stored messages go on the next connection; a
    /// `FileStore` whose sync failed refuses everything after it, so the client writes
    /// nothing until a new client is given the file opened again.
    ///
    /// ```no_run
    /// use mqtt_sync::{Client, QoS};
    /// use mqtt_sync::persistence::{FileStore, SyncPolicy};
    ///
    /// # fn main() -> mqtt_sync::Result<()> {
    /// let client = Client::builder().client_id("meter-1").clean_session(false).build()?;
    /// client.persistence_set(FileStore::open_with("meter-1.store", SyncPolicy::EveryN(64))?)?;
    /// client.connect("localhost", 1883, 60)?;
    /// client.loop_start()?;
    /// client.publish("meters/1", "42", QoS::ExactlyOnce, false)?.wait_for_publish(None)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn persistence_set(
        &self,
        store: impl crate::persistence::Persistence + 'static,
    ) -> Result<()> {
        let mut st = self.inner.lock();
        if st.link.is_open() {
            return Err(Error::state(
                "persistence_set() while a connection is open: call it before connect()",
            ));
        }
        let n = st.session.set_persistence(Box::new(store))?;
        drop(st);
        self.log(
            crate::LogLevel::Info,
            &format!("Persistence: the store holds {n} records, restored"),
        );
        Ok(())
    }

    /// Opt-in automatic resubscription (default off, as Paho): the client remembers its
    /// subscriptions (filters with their options and MQTT 5 properties, minus those
    /// unsubscribed) and, after a CONNACK that did not resume a session, subscribes to them
    /// again before queued messages are sent; their SUBACKs reach `on_subscribe`. Subscriptions
    /// made while it is off are not remembered.
    pub fn resubscribe_set(&self, on: bool) -> Result<()> {
        self.with_state(|st| {
            st.opts.resubscribe = on;
            st.sync_session();
        });
        Ok(())
    }

    /// Opt-in outgoing topic aliases (MQTT 5 §3.3.2.3.4; default 0, off): the client
    /// assigns aliases itself, per connection, to at most `max` topics and at most the
    /// broker's Topic Alias Maximum from CONNACK. The first PUBLISH of a topic on a
    /// connection carries the topic and sets its alias; the following ones carry only the
    /// alias (an empty topic), which saves the topic's bytes on every message. Aliases are
    /// given to the first topics published after each CONNACK and start again on every
    /// connection; a message re-sent after a reconnect sets its alias again. Subscribers
    /// receive the full topic (the broker resolves the alias). While this is on, a publish
    /// with its own Topic Alias property is refused. `Err(NotSupported)` for MQTT 3.x,
    /// which has no aliases.
    ///
    /// ```no_run
    /// # use mqtt_sync::{Client, Protocol, QoS};
    /// let c = Client::builder().client_id("sensor-7").protocol(Protocol::V5).build()?;
    /// c.auto_topic_alias_set(10)?;
    /// c.connect("localhost", 1883, 60)?;
    /// c.loop_start()?;
    /// for i in 0..1000 {
    ///     // From the second message on: 2 bytes of alias instead of the 43-byte topic.
    ///     c.publish("plant/hall-3/line-2/sensor-7/temperature", format!("{i}"), QoS::AtMostOnce, false)?;
    /// }
    /// # Ok::<(), mqtt_sync::Error>(())
    /// ```
    pub fn auto_topic_alias_set(&self, max: u16) -> Result<()> {
        if max > 0 && !self.protocol().is_v5() {
            return Err(Error::NotSupported(
                "topic aliases are an MQTT 5 feature; this client speaks MQTT 3.x".into(),
            ));
        }
        self.with_state(|st| {
            st.opts.auto_aliases = max;
            st.sync_session();
        });
        Ok(())
    }

    /// The number of outgoing topic aliases the client may assign itself (0: off); see
    /// [`auto_topic_alias_set`](Self::auto_topic_alias_set).
    pub fn auto_topic_alias(&self) -> u16 {
        self.inner.lock().opts.auto_aliases
    }

    /// Opt-in (default off): when an MQTT 5 broker answers CONNACK or sends DISCONNECT with
    /// Use Another Server (0x9C) or Server Moved (0x9D) and a Server Reference, the next
    /// attempt goes to that server (`host`, `host:port` or `[v6]:port`; without a port the
    /// current one). Either way the reference reaches `on_connect` / `on_disconnect` in the
    /// properties (`server_reference`).
    pub fn follow_redirects_set(&self, on: bool) -> Result<()> {
        self.with_state(|st| st.opts.follow_redirects = on);
        Ok(())
    }

    /// Reconnect backoff: starts at `min`, doubles up to `max` (defaults 1 s and 120 s),
    /// resets after a successful CONNACK.
    pub fn reconnect_delay_set(&self, min: Duration, max: Duration) -> Result<()> {
        if min > max {
            return Err(Error::invalid(
                "reconnect_delay_set: min_delay must not exceed max_delay",
            ));
        }
        self.with_state(|st| {
            st.opts.reconnect_min = min;
            st.opts.reconnect_max = max;
        });
        Ok(())
    }

    /// Sets TCP_NODELAY for the next connection (default on: lowest latency).
    pub fn tcp_nodelay_set(&self, on: bool) -> Result<()> {
        self.with_state(|st| st.opts.net.nodelay = on);
        Ok(())
    }

    /// Forward internal log lines to the `log` crate (target `mqtt_sync`). On by default:
    /// the `log` facade costs nothing until the application installs a logger.
    pub fn enable_logger(&self) {
        self.set_logger(true);
    }

    /// Stop forwarding log lines to the `log` crate (`on_log` still receives them).
    pub fn disable_logger(&self) {
        self.set_logger(false);
    }

    fn set_logger(&self, on: bool) {
        self.inner.logger.store(on, Ordering::Relaxed);
        self.with_state(|st| {
            st.reporting.logger = on;
            st.sync_session();
        });
    }

    /// Bridge mode: the protocol level in CONNECT gets bit 7 set, so a broker that supports
    /// it does not loop messages back. Call before connect.
    pub fn enable_bridge_mode(&self) {
        self.with_state(|st| st.opts.bridge = true);
    }

    /// Turns manual acknowledgement of incoming QoS 1/2 messages on or off.
    pub fn manual_ack_set(&self, on: bool) -> Result<()> {
        self.with_state(|st| st.opts.manual_ack = on);
        Ok(())
    }

    /// Turns automatic reconnection in `loop_start`/`loop_forever` on or off.
    pub fn reconnect_on_failure_set(&self, on: bool) -> Result<()> {
        self.with_state(|st| st.opts.reconnect_on_failure = on);
        Ok(())
    }

    pub(crate) fn with_net<R>(&self, f: impl FnOnce(&mut NetConfig) -> Result<R>) -> Result<R> {
        let mut st = self.inner.lock();
        f(&mut st.opts.net)
    }

    /// Configures TLS as Paho's `tls_set(ca_certs, certfile, keyfile)`: verification and the
    /// host name check are on. `keyfile` may be `None` when `certfile` holds the key too.
    /// Uses the default backend (`TlsBackend::Auto`: native-tls when the `tls` feature is
    /// built, else rustls); `tls_set_with` can choose.
    pub fn tls_set(
        &self,
        ca_certs: Option<&Path>,
        certfile: Option<&Path>,
        keyfile: Option<&Path>,
    ) -> Result<()> {
        self.tls_set_with(crate::TlsOptions {
            ca_certs: ca_certs.map(|p| p.to_path_buf()),
            certfile: certfile.map(|p| p.to_path_buf()),
            keyfile: keyfile.map(|p| p.to_path_buf()),
            ..Default::default()
        })
    }

    /// Configures TLS with every option of Paho's `tls_set` (verification mode, minimum
    /// version, ALPN, encrypted key password, backend). The files are loaded now, so errors
    /// show here; a backend that was not built gives `Err(NotSupported)`.
    pub fn tls_set_with(&self, options: crate::TlsOptions) -> Result<()> {
        let settings = network::tls::TlsSettings::from_options(options)?;
        self.with_net(|n| {
            n.tls = Some(settings);
            Ok(())
        })
    }

    /// Uses a `native_tls::TlsConnector` you built (Paho's `tls_set_context`).
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls_set_context(&self, connector: native_tls::TlsConnector) -> Result<()> {
        let settings = network::tls::TlsSettings::from_connector(connector);
        self.with_net(|n| {
            n.tls = Some(settings);
            Ok(())
        })
    }

    /// Skips the host name check of the broker's certificate (the chain is still verified).
    /// Call after `tls_set`; with `tls_set_context` it returns `Err(InvalidState)`.
    pub fn tls_insecure_set(&self, insecure: bool) -> Result<()> {
        self.with_net(|n| match n.tls.as_mut() {
            Some(t) => t.set_insecure(insecure),
            None => Err(Error::state(
                "tls_insecure_set() needs tls_set() or tls_set_with() first",
            )),
        })
    }

    /// Connects through a SOCKS5 or HTTP CONNECT proxy (Paho's `proxy_set`). Without it the
    /// `mqtt_proxy` environment variable is honoured, except for hosts in `no_proxy`.
    pub fn proxy_set(&self, options: crate::ProxyOptions) -> Result<()> {
        network::proxy::validate(&options)?;
        self.with_net(|n| {
            n.proxy = Some(options);
            Ok(())
        })
    }

    /// The DNS server `connect_srv` asks (default: the system configuration).
    pub fn srv_nameserver_set(&self, nameserver: Option<SocketAddr>) -> Result<()> {
        self.with_state(|st| st.opts.srv_nameserver = nameserver);
        Ok(())
    }

    /// Sets the WebSocket path (default `/mqtt`) and extra handshake headers.
    pub fn ws_set_options(&self, path: &str, headers: &[(&str, &str)]) -> Result<()> {
        if !path.starts_with('/') {
            return Err(Error::invalid("the WebSocket path must start with '/'"));
        }
        self.with_net(|n| {
            n.ws_path = Some(path.to_string());
            n.ws_headers = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Ok(())
        })
    }
}
