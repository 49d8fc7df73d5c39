//! Kernel arrival stamps of UDP datagrams (`SO_TIMESTAMPNS`).
//!
//! This crate owns the calls that both sides of a RADIUS exchange on one machine need
//! to measure latency honestly: turning stamping on for a socket, and reading the stamp
//! out of a received message's control data (or receiving one datagram with it). The server's UDP workers use it to count the
//! time a request sat in the socket buffer; the load harness uses it to end a reply's
//! latency when the reply arrived, not when the harness got round to reading it.
//!
//! The stamps are wall-clock time: a step of the clock makes stamps already taken read too
//! old or too young. The kernel turns stamping on in the background, so datagrams of the
//! first few milliseconds after [`enable`] may come without a stamp, or stamped when read.
//!
//! `setsockopt(2)` and the `CMSG_*` walk have no safe wrapper in the crates the project
//! uses, so this crate is one of the few allowed `unsafe`: each block states what makes it
//! sound.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bytes of control buffer that hold one `SCM_TIMESTAMPNS` message (a `timespec` and its
/// header), rounded up generously.
pub const CONTROL_LEN: usize = 64;

/// Asks the kernel to stamp every datagram that reaches socket `fd` with its arrival time.
pub fn enable(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a plain descriptor, a pointer to a c_int that outlives the call, and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The arrival stamp among the control messages of `header`, as filled by `recvmsg(2)` or
/// `recvmmsg(2)`; `None` when there is none.
///
/// # Safety
///
/// `header.msg_control` must point at a buffer of at least `header.msg_controllen` bytes
/// that the kernel filled in the receive call that filled `header`, and that is still
/// alive.
pub unsafe fn arrival(header: &libc::msghdr) -> Option<SystemTime> {
    // SAFETY: by the caller's promise the control buffer holds `msg_controllen` bytes of
    // well-formed control messages; CMSG_FIRSTHDR and CMSG_NXTHDR walk them within that
    // length, and each message is checked for type and size before its data is read
    // (unaligned, as a timespec).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(header);
        while !cmsg.is_null() {
            let c = &*cmsg;
            if c.cmsg_level == libc::SOL_SOCKET
                && c.cmsg_type == libc::SCM_TIMESTAMPNS
                && c.cmsg_len as usize
                    >= libc::CMSG_LEN(std::mem::size_of::<libc::timespec>() as u32) as usize
            {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                let secs = u64::try_from(ts.tv_sec).ok()?;
                let nanos = u32::try_from(ts.tv_nsec).ok()?;
                return UNIX_EPOCH.checked_add(Duration::new(secs, nanos));
            }
            cmsg = libc::CMSG_NXTHDR(header, cmsg);
        }
    }
    None
}

/// Receives one datagram from socket `fd` into `buf` with `recvmsg(2)` and `flags` (such as
/// `libc::MSG_DONTWAIT`): its length, and its arrival stamp if the socket stamps arrivals.
pub fn recv(
    fd: RawFd,
    buf: &mut [u8],
    flags: libc::c_int,
) -> io::Result<(usize, Option<SystemTime>)> {
    // As whole u64s, so that the buffer is aligned as control messages must be.
    let mut control = [0u64; CONTROL_LEN / 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is a valid (empty) value.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: the header points at `iov` (which points at `buf`) and at `control`, all alive
    // and of the sizes stated until the call returns.
    let n = unsafe { libc::recvmsg(fd, &mut header, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `header` and `control` were filled by that call and are still alive.
    let stamp = unsafe { arrival(&header) };
    Ok((n as usize, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    fn recv_waiting(socket: &UdpSocket, buf: &mut [u8]) -> (usize, Option<SystemTime>) {
        recv(socket.as_raw_fd(), buf, 0).unwrap()
    }

    #[test]
    fn a_datagram_carries_its_arrival_time_once_stamping_is_on() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 16];
        tx.send_to(b"plain", rx.local_addr().unwrap()).unwrap();
        assert_eq!(
            recv_waiting(&rx, &mut buf),
            (5, None),
            "no stamp unless asked"
        );

        enable(rx.as_raw_fd()).unwrap();
        // Stamping starts a moment later; until then a datagram is stamped when read.
        let mut age = Duration::ZERO;
        for _ in 0..20 {
            let sent = SystemTime::now();
            tx.send_to(b"stamped", rx.local_addr().unwrap()).unwrap();
            std::thread::sleep(Duration::from_millis(30));
            let (n, stamp) = recv_waiting(&rx, &mut buf);
            assert_eq!(&buf[..n], b"stamped");
            let stamp = stamp.expect("a stamp");
            assert!(stamp + Duration::from_millis(1) >= sent);
            age = SystemTime::now().duration_since(stamp).unwrap_or_default();
            if age >= Duration::from_millis(25) {
                break;
            }
        }
        assert!(
            age >= Duration::from_millis(25),
            "stamped when read: {age:?}"
        );
    }

    #[test]
    fn an_empty_socket_does_not_block_with_dontwait() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = recv(rx.as_raw_fd(), &mut [0u8; 8], libc::MSG_DONTWAIT).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn stamping_a_closed_descriptor_is_an_error() {
        assert!(enable(-1).is_err());
    }
}
