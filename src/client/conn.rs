//! The open connection's socket: writing what the session queued, reading and handing bytes
//! to the session, and closing. The only socket I/O outside `network/` (which opens
//! connections); it runs under the client's lock, on whichever thread holds it.

use std::io::{self, Read, Write};
use std::os::fd::RawFd;

use mio::unix::SourceFd;

use super::state::{Link, Retry, State};
use super::Inner;
use crate::network::NetStream;
use crate::session::{Ended, Event, Phase, SocketEvent};
use crate::Error;

/// Read buffer of a new connection; it doubles up to `READ_CHUNK` while reads fill it.
const READ_INITIAL: usize = 8 * 1024;
const READ_CHUNK: usize = 64 * 1024;
/// Bytes read in one go before the loop looks at its other work.
const READ_BUDGET: usize = 1024 * 1024;

/// Output (mostly acknowledgements) at which the client stops reading: publishers are held at
/// `max_outgoing_bytes`, so only a broker that reads nothing gets the output this far.
pub(super) fn read_pause_bound(max_outgoing_bytes: usize) -> usize {
    max_outgoing_bytes.saturating_mul(2)
}

/// An open connection.
pub(super) struct Conn {
    /// Never reused by this client, also not across `reinitialise`: events carry it.
    pub id: u64,
    pub stream: Box<dyn NetStream>,
    pub fd: RawFd,
    rbuf: Vec<u8>,
    rlen: usize,
    /// Stopped reading before `WouldBlock` (budget): poll without waiting next time.
    pub read_more: bool,
    /// Stopped reading because the output waiting for the socket reached its bound (the
    /// broker reads nothing): reading resumes once the output drains below it.
    pub read_paused: bool,
    /// `disconnect()` queued DISCONNECT: close once it is written.
    pub closing: bool,
    /// `connect_async()` was called while closing: connect again once closed.
    pub reconnect_after_close: bool,
    /// Write interest reported to an external loop (`on_socket_register_write`).
    pub write_registered: bool,
    /// The socket takes TCP_QUICKACK (a TCP socket on Linux): see [`Conn::ack_now`].
    quickack: bool,
}

impl Conn {
    pub(super) fn new(id: u64, stream: Box<dyn NetStream>, fd: RawFd) -> Conn {
        Conn {
            id,
            stream,
            fd,
            rbuf: vec![0; READ_INITIAL],
            rlen: 0,
            read_more: false,
            read_paused: false,
            closing: false,
            reconnect_after_close: false,
            write_registered: false,
            quickack: true,
        }
    }

    /// Asks the kernel to acknowledge what was just read now rather than up to 40 ms later
    /// (Linux delayed ACK). A broker with Nagle's algorithm on — mosquitto's default — holds
    /// its next small packet until the previous one is acknowledged; when the client has
    /// nothing to send back (a PUBACK it received, say), the delayed ACK stalls that next
    /// packet (the echo of the next PUBLISH) by 40 ms. Quick-ACK mode is not sticky, so it
    /// is re-armed after every read that returned data. Sockets that refuse it (Unix
    /// sockets) are not asked again.
    fn ack_now(&mut self) {
        if self.quickack && self.stream.ack_now().is_err() {
            self.quickack = false;
        }
    }
}

impl State {
    /// Tells an external loop whether to watch the socket for writability.
    pub(super) fn update_write_interest(&mut self) {
        let pending = self.session.pending_bytes() > 0;
        let report = self.reporting.socket_write;
        let Some(c) = self.link.conn_mut() else {
            return;
        };
        let want = pending || c.stream.has_pending_write();
        if want != c.write_registered {
            c.write_registered = want;
            if report {
                let kind = if want {
                    SocketEvent::RegisterWrite
                } else {
                    SocketEvent::UnregisterWrite
                };
                let fd = c.fd;
                self.session.push_event(Event::Socket(kind, fd));
            }
        }
    }
}

impl Inner {
    /// Writes as much of the pending output as the socket takes.
    pub(super) fn flush(&self, st: &mut State) -> Result<(), Error> {
        let now = crate::time::now();
        let State { link, session, .. } = st;
        let Some(conn) = link.conn_mut() else {
            return Ok(());
        };
        if !session.pending_out().is_empty() {
            // Group commit (`SyncPolicy::BeforeSend`): the records behind these bytes first.
            session.flush_store()?;
        }
        loop {
            let pending = session.pending_out();
            if pending.is_empty() {
                break;
            }
            match conn.stream.write(pending) {
                Ok(0) => return Err(Error::ConnectionLost),
                Ok(n) => session.written(n, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Io(e)),
            }
        }
        if conn.stream.has_pending_write() {
            match conn.stream.flush() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
        st.flow.write_blocked = st.session.pending_bytes() > 0;
        if st.flow.space_waiters > 0 {
            self.cond.notify_all();
        }
        st.update_write_interest();
        Ok(())
    }

    /// Writes what is pending; a failing socket closes the connection.
    pub(super) fn flush_or_close(&self, st: &mut State) {
        if let Err(e) = self.flush(st) {
            self.close_conn(st, Ended::Lost(e));
        }
    }

    /// Reads and handles what the socket has (up to a budget).
    pub(super) fn read_in(&self, st: &mut State) -> Result<(), Ended> {
        let now = crate::time::now();
        let max_packet = st.opts.max_incoming_packet;
        let mut budget = READ_BUDGET;
        let mut got = false;
        let res = self.read_loop(st, now, max_packet, &mut budget, &mut got);
        if got {
            if let Some(c) = st.link.conn_mut() {
                c.ack_now();
            }
        }
        res
    }

    fn read_loop(
        &self,
        st: &mut State,
        now: std::time::Instant,
        max_packet: usize,
        budget: &mut usize,
        got: &mut bool,
    ) -> Result<(), Ended> {
        let out_bound = read_pause_bound(st.opts.max_outgoing_bytes);
        loop {
            let chan_full = st.channel_full();
            let State { link, session, .. } = &mut *st;
            let Some(c) = link.conn_mut() else {
                return Ok(());
            };
            // What the broker sends makes the client queue acknowledgements: while the
            // broker reads none of them, stop reading too, so they cannot pile up without
            // bound (the session closes a connection that makes no progress for a keepalive).
            // A full receive channel (message_channel) holds reading back the same way.
            c.read_paused = session.pending_bytes() >= out_bound || chan_full;
            if c.read_paused {
                c.read_more = false;
                return Ok(());
            }
            if c.rlen == c.rbuf.len() {
                // A packet larger than the buffer: grow (the decoder has already checked
                // the header against the maximum packet size).
                let new_len = (c.rbuf.len() * 2)
                    .min(max_packet.max(READ_CHUNK))
                    .max(c.rlen + 1);
                c.rbuf.resize(new_len, 0);
            }
            match c.stream.read(&mut c.rbuf[c.rlen..]) {
                Ok(0) => return Err(Ended::Lost(Error::ConnectionLost)),
                Ok(n) => {
                    *got = true;
                    let filled = c.rlen + n == c.rbuf.len();
                    c.rlen += n;
                    let awaiting = session.phase() == Phase::AwaitConnAck;
                    let res = session.receive(&c.rbuf[..c.rlen], now);
                    let used = match &res {
                        Ok(u) => *u,
                        Err((u, _)) => *u,
                    };
                    if used > 0 {
                        c.rbuf.copy_within(used..c.rlen, 0);
                        c.rlen -= used;
                        if c.rlen == 0 && c.rbuf.len() > 4 * READ_CHUNK {
                            c.rbuf.truncate(READ_CHUNK);
                            c.rbuf.shrink_to_fit();
                        }
                    }
                    if filled && c.rbuf.len() < READ_CHUNK {
                        // Busy connection: read in larger pieces (idle ones stay small).
                        let new_len = (c.rbuf.len() * 2).min(READ_CHUNK);
                        c.rbuf.resize(new_len, 0);
                    }
                    if awaiting && session.phase() == Phase::Connected {
                        st.connack_succeeded();
                    }
                    if let Err((_, close)) = res {
                        // Write what the session queued (a DISCONNECT with the reason).
                        let _ = self.flush(st);
                        return Err(Ended::Session(close));
                    }
                    *budget = budget.saturating_sub(n);
                    if *budget == 0 {
                        if let Some(c) = st.link.conn_mut() {
                            c.read_more = true;
                        }
                        return Ok(());
                    }
                    // Read again even after a short read: the edge that brought this data may
                    // also have brought the peer's FIN, which only the next read reports (0
                    // bytes); skipping it loses the EOF until the next keepalive.
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if c.stream.has_buffered_read() {
                        continue;
                    }
                    c.read_more = false;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Ended::Lost(Error::Io(e))),
            }
        }
    }

    /// Closes the open connection (if any) and queues the callbacks that report it; then
    /// the link waits for a reconnect (when the user still wants a connection) or is idle.
    pub(super) fn close_conn(&self, st: &mut State, why: Ended) {
        let now = crate::time::now();
        if !st.link.is_open() {
            return;
        }
        let Link::Open(mut c) = std::mem::replace(&mut st.link, Link::Idle) else {
            return;
        };
        let why = match why {
            // The broker closed first after our DISCONNECT: still a clean end.
            Ended::Lost(_) if c.closing => Ended::User,
            other => other,
        };
        let quiet = matches!(why, Ended::Quiet);
        let (closing, reconnect_after_close) = (c.closing, c.reconnect_after_close);
        let _ = self.registry.deregister(&mut SourceFd(&c.fd));
        c.stream.shutdown();
        let mut last = None;
        if c.write_registered {
            st.session
                .push_event(Event::Socket(SocketEvent::UnregisterWrite, c.fd));
            last = Some(SocketEvent::UnregisterWrite);
        }
        if !quiet {
            st.session
                .push_event(Event::Socket(SocketEvent::Close, c.fd));
            last = Some(SocketEvent::Close);
        }
        if let Some(kind) = last {
            // The descriptor stays ours until those callbacks ran (dispatch drops it).
            let Conn { id, stream, .. } = *c;
            st.retired.push((id, kind, stream));
        }
        let err = st.session.connection_closed(why);
        st.link = if closing {
            if reconnect_after_close {
                Link::Waiting(Retry::Now)
            } else {
                Link::Idle
            }
        } else {
            Link::Waiting(Retry::Manual)
        };
        if let Some(e) = err {
            st.last_error = Some(e);
            if !closing {
                st.schedule_reconnect(now, false);
            }
        }
        if let Some(r) = st.session.take_redirect() {
            st.follow_redirect(&r);
        }
        self.cond.notify_all();
    }
}
