//! The frame `meshdns lookup` runs through the program: one query, as a
//! client on the wire would send it (Ethernet, IPv4, UDP to port 53), and
//! the DNS message read back out of the frame the program returns.

use std::net::Ipv4Addr;

/// Documentation addresses (RFC 5737) and locally administered MACs: the
/// program only looks at their kind (unicast), never at their value.
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const CLIENT_PORT: u16 = 40053;

const ETHERNET_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const UDP_LEN: usize = 8;
/// Where the DNS message starts, in the query and in the reply alike:
/// the program keeps the headers' layout when it turns a frame around.
const DNS_AT: usize = ETHERNET_LEN + IPV4_LEN + UDP_LEN;

/// `message` in an Ethernet + IPv4 + UDP frame to port 53, checksums set.
pub fn query_frame(message: &[u8]) -> Vec<u8> {
    let udp_len = (UDP_LEN + message.len()) as u16;
    let mut frame = Vec::with_capacity(DNS_AT + message.len());
    frame.extend(SERVER_MAC);
    frame.extend(CLIENT_MAC);
    frame.extend(0x0800u16.to_be_bytes());

    let mut ip = [0u8; IPV4_LEN];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(IPV4_LEN as u16 + udp_len).to_be_bytes());
    ip[8] = 64; // TTL
    ip[9] = 17; // UDP
    ip[12..16].copy_from_slice(&CLIENT.octets());
    ip[16..20].copy_from_slice(&SERVER.octets());
    let checksum = internet_checksum(&ip, 0);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    frame.extend(ip);

    let mut udp = Vec::with_capacity(UDP_LEN + message.len());
    udp.extend(CLIENT_PORT.to_be_bytes());
    udp.extend(53u16.to_be_bytes());
    udp.extend(udp_len.to_be_bytes());
    udp.extend([0, 0]);
    udp.extend(message);
    // The pseudo-header (RFC 768): addresses, protocol, UDP length.
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend(CLIENT.octets());
    pseudo.extend(SERVER.octets());
    pseudo.extend([0, 17]);
    pseudo.extend(udp_len.to_be_bytes());
    let checksum = match internet_checksum(&udp, sum_words(&pseudo)) {
        0 => 0xffff, // 0 means "no checksum" in UDP over IPv4
        sum => sum,
    };
    udp[6..8].copy_from_slice(&checksum.to_be_bytes());
    frame.extend(udp);
    frame
}

/// The DNS message of a frame built by [`query_frame`] as the program
/// left it, bounded by the UDP length.
pub fn dns_message(frame: &[u8]) -> Option<&[u8]> {
    let udp = frame.get(ETHERNET_LEN + IPV4_LEN..DNS_AT)?;
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    frame.get(DNS_AT..ETHERNET_LEN + IPV4_LEN + udp_len)
}

fn sum_words(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum()
}

/// The RFC 1071 checksum of `bytes`, starting from `sum`.
fn internet_checksum(bytes: &[u8], sum: u32) -> u16 {
    let mut sum = u64::from(sum) + u64::from(sum_words(bytes));
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_checksums_verify_to_zero() {
        let frame =
            query_frame(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01");
        let ip = &frame[ETHERNET_LEN..ETHERNET_LEN + IPV4_LEN];
        assert_eq!(internet_checksum(ip, 0), 0);
        let udp = &frame[ETHERNET_LEN + IPV4_LEN..];
        let mut pseudo = Vec::new();
        pseudo.extend(&ip[12..20]);
        pseudo.extend([0, 17]);
        pseudo.extend((udp.len() as u16).to_be_bytes());
        assert_eq!(internet_checksum(udp, sum_words(&pseudo)), 0);
    }

    #[test]
    fn the_message_comes_back_out_whole() {
        let message = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00";
        let mut frame = query_frame(message);
        assert_eq!(dns_message(&frame), Some(&message[..]));
        // Bytes past the UDP length (padding) are not the message's.
        frame.extend([0; 6]);
        assert_eq!(dns_message(&frame), Some(&message[..]));
        assert_eq!(dns_message(&frame[..DNS_AT - 1]), None);
    }
}
