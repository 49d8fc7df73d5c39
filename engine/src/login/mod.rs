//! Login decisions (to be written).
