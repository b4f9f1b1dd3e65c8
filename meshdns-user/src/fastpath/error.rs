//! What can go wrong with the program in the kernel, typed.

use std::path::PathBuf;

use aya::{
    maps::MapError,
    pin::PinError,
    programs::{ProgramError, links::LinkError},
};
use meshdns_common::ANSWER_PROGRAM;

#[derive(Debug, thiserror::Error)]
pub enum FastPathError {
    #[error("loading the XDP object: {0}")]
    Object(#[from] aya::EbpfError),
    #[error("the XDP object has no {0}")]
    Missing(&'static str),
    #[error("program {ANSWER_PROGRAM}: {0}")]
    Program(#[source] ProgramError),
    #[error("attaching to {iface} in {mode:?} mode: {source}")]
    Attach {
        iface: String,
        mode: crate::netif::XdpAttachMode,
        #[source]
        source: ProgramError,
    },
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: MapError,
    },
    #[error("pinning in {path}: {source}")]
    Pin {
        path: PathBuf,
        #[source]
        source: PinError,
    },
    #[error("pinned link {path}: {source}")]
    Link {
        path: PathBuf,
        #[source]
        source: LinkError,
    },
    #[error("the program's log: {0}")]
    Log(#[source] aya_log::Error),
    #[error(
        "all 2^32 ids of full records (names with several addresses of a family) have been given out"
    )]
    FullIdsExhausted,
    #[error("{iface} runs XDP program {program}, which is not meshdns's: left alone")]
    HookTaken { iface: String, program: u32 },
    #[error("one program serves at most {0} interfaces")]
    TooManyInterfaces(u32),
    #[error("{names} names of {map}'s length, more than the {max} it holds at most")]
    TooManyNames {
        map: &'static str,
        names: usize,
        max: u32,
    },
    #[error("{list} makes {count} IPv{family} ranges, more than the {max} the fast path holds")]
    TooManyRanges {
        list: &'static str,
        family: u8,
        count: usize,
        max: usize,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = FastPathError> = std::result::Result<T, E>;

pub(crate) fn map_error(map: &'static str) -> impl Fn(MapError) -> FastPathError {
    move |source| FastPathError::Map { map, source }
}
