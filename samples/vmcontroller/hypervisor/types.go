package hypervisor

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// VM is a virtual machine as the hypervisor reports it.
type VM struct {
	// ID is assigned by the hypervisor, e.g. "vm-000042".
	ID string `json:"id"`
	// Token is the client token given at create (the VirtualMachine's
	// UID): creates are idempotent on it.
	Token     string `json:"token"`
	Name      string `json:"name"`
	CPU       int32  `json:"cpu"`
	MemoryMiB int64  `json:"memoryMiB"`
	Image     string `json:"image"`
	// Power is the power last requested: PowerOn or PowerOff.
	Power Power `json:"power"`
	// State is where the VM is: Provisioning, Starting, Running,
	// Stopping or Stopped. There is no Failed state: a refused image is
	// refused at create and never stored.
	State     State     `json:"state"`
	CreatedAt time.Time `json:"createdAt"`
}

// Power is the power a VM is asked to have.
type Power string

// The powers.
const (
	PowerOn  Power = "On"
	PowerOff Power = "Off"
)

func (p Power) valid() bool { return p == PowerOn || p == PowerOff }

// State is where a VM is in its life.
type State string

// The states. Provisioning, Starting and Stopping are transitions that end
// after Config.Transition; Running and Stopped are steady.
const (
	StateProvisioning State = "Provisioning"
	StateStarting     State = "Starting"
	StateRunning      State = "Running"
	StateStopping     State = "Stopping"
	StateStopped      State = "Stopped"
)

func (s State) valid() bool {
	switch s {
	case StateProvisioning, StateStarting, StateRunning, StateStopping, StateStopped:
		return true
	}
	return false
}

// transitional reports whether the state ends by itself after a while.
func (s State) transitional() bool {
	return s == StateProvisioning || s == StateStarting || s == StateStopping
}

// CreateRequest asks for a VM. Token is required and makes the create
// idempotent; an empty Power means PowerOn.
type CreateRequest struct {
	Token     string `json:"token"`
	Name      string `json:"name"`
	CPU       int32  `json:"cpu"`
	MemoryMiB int64  `json:"memoryMiB"`
	Image     string `json:"image"`
	Power     Power  `json:"power,omitempty"`
}

// PowerRequest is the body of POST /vms/{id}/power.
type PowerRequest struct {
	Power Power `json:"power"`
}

// Stats counts what the hypervisor holds. Duplicates is the number of VMs
// beyond the first per token: the controller's tests require it to stay 0.
type Stats struct {
	VMs        int   `json:"vms"`
	Tokens     int   `json:"tokens"`
	Duplicates int   `json:"duplicates"`
	Creates    int64 `json:"creates"`
	Deletes    int64 `json:"deletes"`
	// Fencing counts the mutating calls by their fencing token.
	Fencing FencingStats `json:"fencing"`
}

// FencingStats counts mutating calls (create, power, delete) by the
// fencing token they carried (header Rein-Fencing-Token).
type FencingStats struct {
	// Accepted carried a token no lower than the highest accepted for the
	// VM; Refused carried a lower one and got 409 StaleFencingToken (a
	// leader whose term had ended); Unfenced carried none.
	Accepted int64 `json:"accepted"`
	Refused  int64 `json:"refused"`
	Unfenced int64 `json:"unfenced"`
	// OutOfOrder counts calls applied after a call with a newer token (same
	// lease) had been applied to the same VM: stale calls that got through.
	// Kept apart from the check that refuses them; it must stay 0.
	OutOfOrder int64 `json:"outOfOrder"`
}

// Error codes, in Error.Code.
const (
	CodeNotFound     = "NotFound"          // 404: no VM with that ID (or token)
	CodeImageRefused = "ImageRefused"      // 422: the image has a refused prefix
	CodeInjected     = "Injected"          // 503: a failure injected by Config.ErrorRate
	CodeBadRequest   = "BadRequest"        // 400: invalid body or fields
	CodeUnavailable  = "Unavailable"       // 503: the server is closed
	CodeInternal     = "Internal"          // 500: the state could not be persisted
	CodeNoRoute      = "NoRoute"           // 404: no such endpoint (not a missing VM)
	CodeStaleToken   = "StaleFencingToken" // 409: a fencing token lower than one accepted before for the VM
)

// Error is an API error: the HTTP status, a machine-readable Code and a
// message. The server sends it as {"code":...,"message":...}; the client
// returns it as *Error for every non-2xx answer.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("hypervisor: %s (%d): %s", e.Code, e.Status, e.Message)
}

func newError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *Error {
	return newError(http.StatusNotFound, CodeNotFound, format, args...)
}

func badRequest(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, CodeBadRequest, format, args...)
}

func hasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// IsNotFound reports whether err is an *Error with Code NotFound: the VM
// does not exist (or no longer does).
func IsNotFound(err error) bool { return hasCode(err, CodeNotFound) }

// IsImageRefused reports whether err is an *Error with Code ImageRefused:
// retrying the same create will not help.
func IsImageRefused(err error) bool { return hasCode(err, CodeImageRefused) }

// ImageCheck is the answer of GET /images/check?image=…: whether a create
// with Image would be accepted, and if not, why.
type ImageCheck struct {
	Image   string `json:"image"`
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason,omitempty"`
}
