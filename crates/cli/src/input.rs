//! The packet source of a command: `InputArgs` turned into the pipeline's
//! [`SourceConfig`]. The read loop itself lives in `pipeline::source`.

pub use pipeline::source::{Event, Input, Source, SourceError as Stop};
use pipeline::SourceConfig;

use crate::{Failure, InputArgs};

impl From<Stop> for Failure {
    fn from(s: Stop) -> Self {
        match s {
            Stop::Usage(e) => Failure::Usage(e),
            Stop::Capture(e) => Failure::Input(e.into()),
            Stop::Live(e) => Failure::Input(e.into()),
            Stop::Generate(e) => Failure::Input(e.into()),
            Stop::Sink(e) => Failure::Input(e.into()),
        }
    }
}

/// The source an `InputArgs` names.
pub fn source_config(args: &InputArgs) -> SourceConfig {
    SourceConfig {
        files: args.read.iter().cloned().collect(),
        interface: args.interface.clone(),
        duration: args.duration,
        count: args.count,
        speed: args.speed.0,
        ..args.capture.source_config()
    }
}

/// Opens the source of a command.
pub fn open(args: &InputArgs) -> Result<Input, Failure> {
    if args.read.is_some() && args.interface.is_some() {
        return Err(Failure::Usage(
            "give either -r FILE or -i INTERFACE, not both".into(),
        ));
    }
    Ok(Input::open(&source_config(args))?)
}
