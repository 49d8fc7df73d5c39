//! Actors (to be written).
