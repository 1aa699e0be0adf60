//! mpmt: multi-process or multi-thread, measured.
#![deny(unsafe_code)]
