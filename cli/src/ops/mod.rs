//! The work below the commands: what a command runs once its flags are read, as cargo's
//! `ops` is to its `commands`.

pub(crate) mod ensure;
pub(crate) mod keyring_rescue;
