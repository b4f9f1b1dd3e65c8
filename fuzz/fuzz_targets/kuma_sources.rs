//! What the mesh's control plane sends: kuma-cp's paged lists of meshes
//! and of services (their names made from each), and kuma-dp's VIP list.
//! Any bytes are a page, a list or an error with its position; none
//! panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshdns::source::{kuma_cp::api, kuma_vips};

fuzz_target!(|data: &[u8]| {
    if let Ok(page) = api::page::<api::Service>(data) {
        for service in &page.items {
            let _ = api::names_of(service);
        }
    }
    let _ = api::page::<api::Mesh>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = kuma_vips::parse(text, "mesh");
    }
});
