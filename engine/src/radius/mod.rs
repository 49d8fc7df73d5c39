//! RADIUS codec (to be written).
