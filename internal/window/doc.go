// Package window is the arithmetic of sync windows ([[job]] window =
// "02:00-04:00"): times of day, in local time, in which a job sends and
// applies its changes. It is pure: no clock, no I/O; the caller passes the
// time, so every question ("is it open now?", "when does it open next?")
// is table-tested without sleeping.
package window
