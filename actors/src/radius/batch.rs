//! Receiving datagrams in batches, with the time each one reached the socket, and the rule
//! that sheds what waited too long.
//!
//! [`RecvBatch`] takes up to [`BATCH`] datagrams per `recvmmsg(2)` call (waiting for the
//! first, then taking only what is already there), so that a busy worker pays one system
//! call for many requests. The kernel stamps each datagram when it arrives
//! (`SO_TIMESTAMPNS`), so the worker knows how long it sat in the socket buffer: that wait is
//! part of the latency a NAS sees, and the metrics count it. The stamps are wall-clock time:
//! a step of the clock makes the datagrams already waiting read too old (they may be shed)
//! or not old at all, and the next ones read right.
//!
//! [`Shedder`] decides from those waits whether a datagram is still worth answering. A burst
//! is absorbed: datagrams are shed only after every wait has stayed above the target, and
//! every receive has found a full batch waiting, for a whole interval (the server is
//! persistently behind a standing queue; late datagrams without a queue mean the worker was
//! not scheduled, which shedding would not cure). From then on every datagram that
//! waited longer than the target is dropped and counted, and those within it are answered,
//! until a whole interval passes without a late datagram (the overload is over). Under
//! overload the answered requests thus keep a wait near the target instead of the whole
//! socket buffer's, and the excess goes back to the NASes, which retransmit.
//!
//! `recvmmsg(2)` and the control messages have no safe wrapper in the crates this project
//! uses, so this module is one of the few allowed `unsafe`: each block states what makes it
//! sound, and the buffers the kernel writes into are owned here and sized as declared.

#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime};

use tollgate_engine::radius::MAX_PACKET_LEN;

/// Datagrams taken per receive call at most.
pub const BATCH: usize = 32;

/// Room for one `SCM_TIMESTAMPNS` control message.
const CONTROL_LEN: usize = tollgate_netstamp::CONTROL_LEN;

/// Asks the kernel to stamp every datagram of `socket` with its arrival time. The kernel
/// turns stamping on in the background, so datagrams of the next few milliseconds may come
/// unstamped (and read as not having waited).
pub fn enable_timestamps(socket: &UdpSocket) -> io::Result<()> {
    tollgate_netstamp::enable(socket.as_raw_fd())
}

/// One received datagram.
pub struct Datagram<'a> {
    /// Its bytes.
    pub bytes: &'a [u8],
    /// Where it came from.
    pub peer: SocketAddr,
    /// When the kernel received it, if it said.
    pub arrived: Option<SystemTime>,
}

impl Datagram<'_> {
    /// How long it has waited at `now` (zero when the kernel gave no arrival time). A batch
    /// is worked through one datagram after another, so the wait is read when each one's
    /// turn comes, not when the batch was taken.
    pub fn waited(&self, now: SystemTime) -> Duration {
        self.arrived
            .and_then(|at| now.duration_since(at).ok())
            .unwrap_or(Duration::ZERO)
    }
}

/// The buffers of one batch receive, reused for every call.
pub struct RecvBatch {
    buffers: Box<[[u8; MAX_PACKET_LEN]]>,
    addresses: Box<[libc::sockaddr_storage]>,
    controls: Box<[[u64; CONTROL_LEN / 8]]>,
    iovecs: Box<[libc::iovec]>,
    headers: Box<[libc::mmsghdr]>,
    /// How many of the buffers the last call filled.
    filled: usize,
}

// SAFETY: the raw pointers inside `iovecs` and `headers` point only into this value's own
// boxed buffers and are rewritten before every call; nothing else shares them.
unsafe impl Send for RecvBatch {}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch::new()
    }
}

impl RecvBatch {
    /// Buffers for [`BATCH`] datagrams.
    pub fn new() -> RecvBatch {
        // SAFETY: all-zero is a valid value of this plain C structure.
        let zeroed_storage =
            unsafe { MaybeUninit::<libc::sockaddr_storage>::zeroed().assume_init() };
        let (iovecs, headers) = empty_messages(BATCH);
        RecvBatch {
            buffers: vec![[0u8; MAX_PACKET_LEN]; BATCH].into_boxed_slice(),
            addresses: vec![zeroed_storage; BATCH].into_boxed_slice(),
            controls: vec![[0u64; CONTROL_LEN / 8]; BATCH].into_boxed_slice(),
            iovecs,
            headers,
            filled: 0,
        }
    }

    /// Waits for at least one datagram on `socket` (up to its read timeout) and takes every
    /// one already waiting, up to [`BATCH`]. Returns how many were taken.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        for i in 0..BATCH {
            self.iovecs[i] = libc::iovec {
                iov_base: self.buffers[i].as_mut_ptr().cast(),
                iov_len: MAX_PACKET_LEN,
            };
            let header = &mut self.headers[i].msg_hdr;
            header.msg_name = (&mut self.addresses[i] as *mut libc::sockaddr_storage).cast();
            header.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_iov = &mut self.iovecs[i];
            header.msg_iovlen = 1;
            header.msg_control = self.controls[i].as_mut_ptr().cast();
            header.msg_controllen = CONTROL_LEN as _;
            header.msg_flags = 0;
            self.headers[i].msg_len = 0;
        }
        // SAFETY: every header points at live buffers of the sizes it states, owned by self
        // and not touched until the call returns.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.filled = 0;
            return Err(io::Error::last_os_error());
        }
        self.filled = n as usize;
        Ok(self.filled)
    }

    /// The `i`th datagram of the last receive; `None` past the end, for an address family
    /// other than IPv4 and IPv6, or for a datagram cut short by the buffer (larger than any
    /// RADIUS packet may be).
    pub fn get(&self, i: usize) -> Option<Datagram<'_>> {
        if i >= self.filled {
            return None;
        }
        let header = &self.headers[i];
        if header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return None;
        }
        let len = (header.msg_len as usize).min(MAX_PACKET_LEN);
        let peer = socket_addr(&self.addresses[i])?;
        Some(Datagram {
            bytes: &self.buffers[i][..len],
            peer,
            // SAFETY: the header and its control buffer (owned by self) were filled by the
            // last recvmmsg call, which reported `filled` messages, this one among them.
            arrived: unsafe { tollgate_netstamp::arrival(&header.msg_hdr) },
        })
    }
}

/// Replies to be sent together with one `sendmmsg(2)` call: a worker queues the replies
/// to one received batch and sends them when the batch is worked through, when
/// [`SEND_BATCH`] are waiting, or when the first has waited [`SEND_AFTER`], paying one
/// system call for all of them.
pub struct SendBatch {
    buffers: Box<[Vec<u8>]>,
    peers: Vec<socket2::SockAddr>,
    iovecs: Box<[libc::iovec]>,
    headers: Box<[libc::mmsghdr]>,
    /// When the first reply still waiting was queued.
    oldest: Option<Instant>,
}

/// Replies sent per `sendmmsg(2)` call at most.
pub const SEND_BATCH: usize = BATCH;

/// How long a reply may wait for others to leave with it. Fast-path logins take a few
/// microseconds each, so about ten share a call; a login that takes long (a wide HOTP
/// look-ahead that finds nothing) sends the replies before it as soon as it is done, not
/// after the whole batch.
pub const SEND_AFTER: Duration = Duration::from_micros(30);

// SAFETY: as for RecvBatch: the raw pointers point only into this value's own buffers and
// are rewritten before every call.
unsafe impl Send for SendBatch {}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch::new()
    }
}

impl SendBatch {
    /// Room for [`SEND_BATCH`] replies.
    pub fn new() -> SendBatch {
        let (iovecs, headers) = empty_messages(SEND_BATCH);
        SendBatch {
            buffers: (0..SEND_BATCH)
                .map(|_| Vec::with_capacity(MAX_PACKET_LEN))
                .collect(),
            peers: Vec::with_capacity(SEND_BATCH),
            iovecs,
            headers,
            oldest: None,
        }
    }

    /// Replies queued and not yet sent.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The buffer for the next reply, emptied. Call [`SendBatch::queue`] to send what it
    /// then holds; a buffer not queued is reused for the next reply.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        let buffer = &mut self.buffers[self.peers.len().min(SEND_BATCH - 1)];
        buffer.clear();
        buffer
    }

    /// Queues the reply in the buffer last handed out for `peer` (at `now`), sending the
    /// whole batch on `socket` when it is full.
    pub fn queue(&mut self, peer: SocketAddr, socket: &UdpSocket, now: Instant) {
        self.peers.push(peer.into());
        self.oldest.get_or_insert(now);
        if self.peers.len() == SEND_BATCH {
            self.flush(socket);
        }
    }

    /// Sends the queued replies if the first of them has waited [`SEND_AFTER`] at `now`.
    pub fn flush_if_due(&mut self, socket: &UdpSocket, now: Instant) {
        if self
            .oldest
            .is_some_and(|at| now.saturating_duration_since(at) >= SEND_AFTER)
        {
            self.flush(socket);
        }
    }

    /// Sends every queued reply. A reply the kernel refuses (an unreachable peer, a full
    /// buffer) is logged and skipped; the others still go. Returns how many went.
    pub fn flush(&mut self, socket: &UdpSocket) -> usize {
        let n = self.peers.len();
        for i in 0..n {
            self.iovecs[i] = libc::iovec {
                iov_base: self.buffers[i].as_mut_ptr().cast(),
                iov_len: self.buffers[i].len(),
            };
            let header = &mut self.headers[i];
            header.msg_hdr.msg_name = self.peers[i].as_ptr() as *mut libc::c_void;
            header.msg_hdr.msg_namelen = self.peers[i].len();
            header.msg_hdr.msg_iov = &mut self.iovecs[i];
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_control = std::ptr::null_mut();
            header.msg_hdr.msg_controllen = 0;
            header.msg_hdr.msg_flags = 0;
            header.msg_len = 0;
        }
        let mut start = 0;
        let mut sent = 0;
        while start < n {
            // SAFETY: headers[start..n] point at live buffers, addresses and iovecs owned
            // by self, of the lengths they state, untouched until the call returns.
            let r = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    self.headers[start..].as_mut_ptr(),
                    (n - start) as libc::c_uint,
                    0,
                )
            };
            if r > 0 {
                start += r as usize;
                sent += r as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The call stops at the first message it cannot send and reports it only when
            // that message is the first: skip it and go on with the rest.
            tracing::debug!(peer = ?self.peers[start].as_socket(), error = %e, "reply not sent");
            start += 1;
        }
        self.peers.clear();
        self.oldest = None;
        sent
    }
}

/// `n` empty I/O vectors and message headers for a batch call, filled in before each one.
fn empty_messages(n: usize) -> (Box<[libc::iovec]>, Box<[libc::mmsghdr]>) {
    // SAFETY: all-zero is a valid value of this plain C structure.
    let zeroed_header = unsafe { MaybeUninit::<libc::mmsghdr>::zeroed().assume_init() };
    let empty = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    (
        vec![empty; n].into_boxed_slice(),
        vec![zeroed_header; n].into_boxed_slice(),
    )
}

/// The source address of a datagram.
fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large
            // enough and aligned enough for.
            let v4 =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(v6.sin6_addr.s6_addr),
                u16::from_be(v6.sin6_port),
                u32::from_be(v6.sin6_flowinfo),
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// When to shed a datagram for having waited too long (see the module documentation).
#[derive(Debug, Clone)]
pub struct Shedder {
    target: Duration,
    interval: Duration,
    /// Since when every datagram has waited longer than the target (not shedding).
    above_since: Option<Instant>,
    /// While shedding: when a datagram last waited longer than the target.
    last_late: Option<Instant>,
}

impl Shedder {
    /// Sheds datagrams that waited longer than `target` once waits have stayed above it for
    /// `interval`, and goes on until no datagram has waited longer for a whole `interval`;
    /// a zero `target` never sheds.
    pub fn new(target: Duration, interval: Duration) -> Shedder {
        Shedder {
            target,
            interval,
            above_since: None,
            last_late: None,
        }
    }

    /// Whether a datagram that `waited` is to be dropped, as seen at `now`.
    pub fn shed(&mut self, waited: Duration, now: Instant) -> bool {
        if self.target.is_zero() {
            return false;
        }
        let late = waited > self.target;
        if let Some(last) = self.last_late {
            if late {
                self.last_late = Some(now);
                return true;
            }
            if now.saturating_duration_since(last) >= self.interval {
                // A whole interval without a late datagram: the overload is over.
                self.last_late = None;
            }
            return false;
        }
        if !late {
            self.above_since = None;
            return false;
        }
        let since = *self.above_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.interval {
            self.above_since = None;
            self.last_late = Some(now);
            return true;
        }
        false
    }

    /// A receive took `taken` datagrams. Fewer than a full batch means no queue stood in
    /// the socket: late datagrams then come from the worker not being scheduled (the core
    /// busy with something else), which dropping requests would not cure, so the wait for
    /// a persistent backlog starts over. Once shedding, only a calm interval ends it.
    pub fn received(&mut self, taken: usize) {
        if taken < BATCH {
            self.above_since = None;
        }
    }

    /// Whether the shedder is dropping late datagrams now.
    pub fn is_shedding(&self) -> bool {
        self.last_late.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_burst_shorter_than_the_interval_is_absorbed() {
        let mut s = Shedder::new(ms(1), ms(50));
        let t0 = Instant::now();
        for i in 0..40 {
            assert!(!s.shed(ms(5), t0 + ms(i)));
        }
        // Caught up: a datagram within the target; the next late one starts afresh.
        assert!(!s.shed(Duration::from_micros(100), t0 + ms(41)));
        assert!(!s.shed(ms(5), t0 + ms(45)));
        assert!(!s.shed(ms(5), t0 + ms(90)));
        assert!(!s.is_shedding());
    }

    #[test]
    fn a_persistent_backlog_sheds_late_datagrams_until_a_calm_interval() {
        let mut s = Shedder::new(ms(1), ms(50));
        let t0 = Instant::now();
        assert!(!s.shed(ms(2), t0));
        assert!(!s.shed(ms(3), t0 + ms(49)));
        assert!(s.shed(ms(3), t0 + ms(50)));
        assert!(s.is_shedding());
        // Datagrams within the target are answered while shedding...
        assert!(!s.shed(Duration::from_micros(500), t0 + ms(51)));
        // ... and late ones are still shed: under overload the two alternate.
        assert!(s.shed(ms(2), t0 + ms(52)));
        assert!(!s.shed(Duration::from_micros(900), t0 + ms(80)));
        assert!(s.shed(ms(2), t0 + ms(100)));
        // A whole interval without a late datagram ends it.
        assert!(!s.shed(Duration::from_micros(100), t0 + ms(149)));
        assert!(s.is_shedding());
        assert!(!s.shed(Duration::from_micros(100), t0 + ms(150)));
        assert!(!s.is_shedding());
        assert!(
            !s.shed(ms(2), t0 + ms(151)),
            "a new interval must pass first"
        );
    }

    #[test]
    fn late_datagrams_without_a_queue_are_not_shed() {
        // The core was busy elsewhere (an Argon2 check, another process): every datagram is
        // late, but each receive finds only one.
        let mut s = Shedder::new(ms(1), ms(50));
        let t0 = Instant::now();
        for i in 0..20 {
            s.received(1);
            assert!(!s.shed(ms(4), t0 + ms(i * 10)));
        }
        assert!(!s.is_shedding());
        // With full batches the same waits are a backlog.
        for i in 20..40 {
            s.received(BATCH);
            s.shed(ms(4), t0 + ms(i * 10));
        }
        assert!(s.is_shedding());
        // A short batch does not end shedding; a calm interval does.
        s.received(1);
        assert!(s.shed(ms(4), t0 + ms(400)));
    }

    #[test]
    fn a_zero_target_never_sheds() {
        let mut s = Shedder::new(Duration::ZERO, ms(1));
        let t0 = Instant::now();
        for i in 0..100 {
            assert!(!s.shed(Duration::from_secs(1), t0 + ms(i * 10)));
        }
    }

    #[test]
    fn batches_carry_every_datagram_with_its_source_and_wait() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_timestamps(&server).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        // The kernel turns stamping on in the background when a socket first asks for it.
        std::thread::sleep(ms(50));
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        for i in 0..5u8 {
            client.send_to(&[i; 20], to).unwrap();
        }
        // A datagram larger than any RADIUS packet is cut short and refused.
        client.send_to(&[9u8; MAX_PACKET_LEN + 10], to).unwrap();
        std::thread::sleep(ms(20));
        let mut batch = RecvBatch::new();
        let n = batch.recv(&server).unwrap();
        assert_eq!(n, 6);
        let now = SystemTime::now();
        for i in 0..5 {
            let d = batch.get(i).unwrap();
            assert_eq!(d.bytes, &[i as u8; 20]);
            assert_eq!(d.peer, client.local_addr().unwrap());
            let waited = d.waited(now);
            assert!(waited >= ms(15), "{waited:?}");
            assert!(waited < Duration::from_secs(2), "{waited:?}");
            // Later, it has waited longer.
            assert!(d.waited(now + ms(5)) >= waited + ms(5));
        }
        assert!(batch.get(5).is_none(), "truncated");
        assert!(batch.get(6).is_none());
        // Nothing waiting: the read timeout ends the wait.
        server.set_read_timeout(Some(ms(30))).unwrap();
        let e = batch.recv(&server).unwrap_err();
        assert!(matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ));
    }

    fn receive_all(socket: &UdpSocket) -> Vec<Vec<u8>> {
        socket.set_read_timeout(Some(ms(200))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok(n) = socket.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        got
    }

    #[test]
    fn a_send_batch_delivers_each_reply_to_its_peer_and_skips_a_refused_one() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (pa, pb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        // An IPv6 peer on an IPv4 socket: the kernel refuses that one message.
        let refused: SocketAddr = "[2001:db8::1]:1812".parse().unwrap();
        let mut sends = SendBatch::new();
        for (i, peer) in [refused, pa, pb, pa, refused, pb, pa]
            .into_iter()
            .enumerate()
        {
            sends.buffer().extend_from_slice(&[i as u8; 20]);
            sends.queue(peer, &server, Instant::now());
        }
        assert_eq!(sends.len(), 7);
        assert_eq!(sends.flush(&server), 5);
        assert!(sends.is_empty());
        assert_eq!(
            receive_all(&a),
            vec![vec![1u8; 20], vec![3u8; 20], vec![6u8; 20]]
        );
        assert_eq!(receive_all(&b), vec![vec![2u8; 20], vec![5u8; 20]]);
    }

    #[test]
    fn a_full_send_batch_goes_out_by_itself() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = client.local_addr().unwrap();
        let mut sends = SendBatch::new();
        for i in 0..SEND_BATCH + 1 {
            let buffer = sends.buffer();
            assert!(buffer.is_empty());
            buffer.extend_from_slice(&(i as u32).to_be_bytes());
            sends.queue(peer, &server, Instant::now());
        }
        assert_eq!(
            sends.len(),
            1,
            "the first SEND_BATCH went when the batch filled"
        );
        let got = receive_all(&client);
        assert_eq!(got.len(), SEND_BATCH);
        for (i, d) in got.iter().enumerate() {
            assert_eq!(d[..], (i as u32).to_be_bytes());
        }
        // A buffer handed out and not queued is not sent.
        sends.buffer().extend_from_slice(b"abandoned");
        assert_eq!(sends.flush(&server), 1);
        assert_eq!(
            receive_all(&client),
            vec![(SEND_BATCH as u32).to_be_bytes().to_vec()]
        );
    }

    #[test]
    fn a_reply_waits_for_others_no_longer_than_send_after() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = client.local_addr().unwrap();
        let mut sends = SendBatch::new();
        let t0 = Instant::now();
        sends.buffer().extend_from_slice(b"first");
        sends.queue(peer, &server, t0);
        sends.buffer().extend_from_slice(b"second");
        sends.queue(peer, &server, t0 + SEND_AFTER / 2);
        sends.flush_if_due(&server, t0 + SEND_AFTER / 2);
        assert_eq!(sends.len(), 2, "not yet due");
        sends.flush_if_due(&server, t0 + SEND_AFTER);
        assert!(sends.is_empty(), "the first has waited long enough");
        assert_eq!(
            receive_all(&client),
            vec![b"first".to_vec(), b"second".to_vec()]
        );
        // The clock starts again with the next reply queued.
        sends.flush_if_due(&server, t0 + 10 * SEND_AFTER);
        sends.buffer().extend_from_slice(b"third");
        sends.queue(peer, &server, t0 + 10 * SEND_AFTER);
        sends.flush_if_due(&server, t0 + 10 * SEND_AFTER);
        assert_eq!(sends.len(), 1);
    }

    #[test]
    fn ipv6_sources_are_read() {
        let Ok(server) = UdpSocket::bind("[::1]:0") else {
            return; // no IPv6 loopback on this machine
        };
        let client = UdpSocket::bind("[::1]:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        client
            .send_to(b"hello", server.local_addr().unwrap())
            .unwrap();
        let mut batch = RecvBatch::new();
        assert_eq!(batch.recv(&server).unwrap(), 1);
        let d = batch.get(0).unwrap();
        assert_eq!(d.peer, client.local_addr().unwrap());
        assert_eq!(d.arrived, None, "no timestamps asked for");
        assert_eq!(d.waited(SystemTime::now()), Duration::ZERO);
    }
}
