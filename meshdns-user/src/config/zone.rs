//! A zone as the XDP program sees it: its apex, its flags, and its SOA
//! record (RFC 1035 §3.3.13) in wire format, built once from the file.

use meshdns_common::{MAX_SOA_NAMES_LEN, NameKey, ZONE_AUTHORITATIVE, ZoneConfig};

use super::{ConfigErrorKind, Soa};
use crate::dns_name;

/// The apex, flags and SOA record of zone `zone` (`apex` in wire format).
pub(super) fn zone_config(
    zone: &str,
    apex: &[u8],
    authoritative: bool,
    soa: &Soa,
) -> Result<ZoneConfig, ConfigErrorKind> {
    let name = |field: &'static str, value: &Option<String>, default: String| {
        let value = value.clone().unwrap_or(default);
        dns_name::from_text(&value).map_err(|error| ConfigErrorKind::SoaName {
            field,
            value,
            error,
        })
    };
    let mname = name("mname", &soa.mname, format!("ns.{zone}."))?;
    let rname = name("rname", &soa.rname, format!("hostmaster.{zone}."))?;
    if mname.len() + rname.len() > MAX_SOA_NAMES_LEN {
        return Err(ConfigErrorKind::SoaNamesTooLong {
            len: mname.len() + rname.len(),
        });
    }

    let mut rdata = Vec::new();
    rdata.extend(&mname);
    rdata.extend(&rname);
    for field in [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum] {
        rdata.extend(field.to_be_bytes());
    }
    let mut rr = Vec::new();
    rr.extend(6u16.to_be_bytes()); // TYPE SOA
    rr.extend(1u16.to_be_bytes()); // CLASS IN
    // A negative answer's SOA has the MINIMUM as its TTL (RFC 2308 §3).
    rr.extend(soa.minimum.to_be_bytes());
    rr.extend((rdata.len() as u16).to_be_bytes());
    rr.extend(rdata);

    let mut zone_config = ZoneConfig {
        apex: NameKey::from_wire(apex)
            .expect("from_text makes well-formed names")
            .wire,
        apex_len: apex.len() as u16,
        soa_rr_len: rr.len() as u16,
        flags: if authoritative { ZONE_AUTHORITATIVE } else { 0 },
        soa_rr: [0; meshdns_common::MAX_SOA_RR_LEN],
    };
    zone_config.soa_rr[..rr.len()].copy_from_slice(&rr);
    Ok(zone_config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Services;

    #[test]
    fn rfc1035_3_3_13_soa_record_with_defaults() {
        let services = Services::parse("zone: Mesh.\n").unwrap();
        let zone = &services.zones[0];
        assert_eq!(&zone.apex[..zone.apex_len as usize], b"\x04mesh\x00");
        let rr = &zone.soa_rr[..zone.soa_rr_len as usize];
        let mut want = vec![0, 6, 0, 1, 0, 0, 0, 30];
        let rdata = [&b"\x02ns\x04mesh\x00"[..], b"\x0ahostmaster\x04mesh\x00"].concat();
        want.extend(((rdata.len() + 20) as u16).to_be_bytes());
        want.extend(rdata);
        for field in [1u32, 3600, 600, 86400, 30] {
            want.extend(field.to_be_bytes());
        }
        assert_eq!(rr, want);
    }

    #[test]
    fn soa_names_are_checked() {
        let (line, kind) = Services::parse("soa:\n  mname: \"bad name.\"\n").unwrap_err();
        assert!(
            matches!(kind, ConfigErrorKind::SoaName { field: "mname", .. }),
            "{kind}"
        );
        assert_eq!(line, Some(2));
        let long = format!(
            "soa: {{ mname: {0}.{0}., rname: {0}.x. }}\n",
            "a".repeat(60)
        );
        assert!(matches!(
            Services::parse(&long).unwrap_err().1,
            ConfigErrorKind::SoaNamesTooLong { .. }
        ));
    }
}
