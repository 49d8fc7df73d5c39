//! OTP core (to be written).
