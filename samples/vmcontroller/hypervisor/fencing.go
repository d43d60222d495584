package hypervisor

import (
	"net/http"
	"strconv"
	"strings"
)

// FencingHeader carries a controller's fencing token,
// "<namespace>/<lease>/<term>" (github.com/rein-k8s/rein/pkg/fence.TokenHeader).
const FencingHeader = "Rein-Fencing-Token"

// fencing is the highest token accepted per VM (by the VM's token, the
// idempotency key of its VirtualMachine), and the counters.
type fencing struct {
	highest                     map[string]fenceMark
	accepted, refused, unfenced int64
	// applied is the newest token of a mutating call applied per VM, kept
	// apart from highest (which the check updates): outOfOrder counts calls
	// applied after a call with a newer token of the same lease had been
	// applied to the same VM, so that a hole in the check shows.
	applied    map[string]fenceMark
	outOfOrder int64
}

// fenceMark is one accepted token: tokens compare only within one lease.
type fenceMark struct {
	lease string // namespace/name
	term  int64
}

// parseToken reads "<namespace>/<lease>/<term>".
func parseToken(header string) (fenceMark, bool) {
	cut := strings.LastIndex(header, "/")
	if cut <= 0 {
		return fenceMark{}, false
	}
	term, err := strconv.ParseInt(header[cut+1:], 10, 64)
	if err != nil || term < 0 {
		return fenceMark{}, false
	}
	return fenceMark{lease: header[:cut], term: term}, true
}

// tokenOf is the token of VM id, "" when there is none.
func (s *Server) tokenOf(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.vms[id]; ok {
		return e.vm.Token
	}
	return ""
}

// checkFence applies the fencing-token rule to a mutating call on the VM
// of vmToken: a token lower than the highest accepted for that VM (same
// lease) is refused; an equal or higher one is accepted and becomes the
// mark. A call without a token passes, counted. The caller holds fenceMu
// until the call is applied. Marks live in memory: a restarted hypervisor
// accepts the next token it sees.
func (s *Server) checkFence(r *http.Request, vmToken string) *Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	header := r.Header.Get(FencingHeader)
	if header == "" {
		s.fencing.unfenced++
		return nil
	}
	mark, ok := parseToken(header)
	if !ok {
		return badRequest("%s %q is not <namespace>/<lease>/<term>", FencingHeader, header)
	}
	if vmToken == "" {
		s.fencing.accepted++ // no such VM: the call answers 404 anyway
		return nil
	}
	if old, ok := s.fencing.highest[vmToken]; ok && old.lease == mark.lease && mark.term < old.term {
		s.fencing.refused++
		s.log.WithFields(map[string]any{"method": r.Method, "path": r.URL.Path, "token": header, "newest": old.term, "vm": vmToken}).
			Warn("refused a stale fencing token")
		return newError(http.StatusConflict, CodeStaleToken,
			"fencing token %s is older than %s/%d, the newest accepted for VM %s: the sender's leadership term has ended", header, old.lease, old.term, vmToken)
	}
	s.fencing.highest[vmToken] = mark
	s.fencing.accepted++
	return nil
}

// noteApplied records that a mutating call carrying r's token was applied
// to the VM of vmToken. The caller holds fenceMu.
func (s *Server) noteApplied(r *http.Request, vmToken string) {
	header := r.Header.Get(FencingHeader)
	mark, ok := parseToken(header)
	if !ok || vmToken == "" {
		return // checkFence counted or refused it
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fencing.applied == nil {
		s.fencing.applied = map[string]fenceMark{}
	}
	if old, ok := s.fencing.applied[vmToken]; ok && old.lease == mark.lease && mark.term < old.term {
		s.fencing.outOfOrder++
		s.log.WithFields(map[string]any{"token": header, "newest": old.term, "vm": vmToken}).
			Error("applied a call whose fencing token is older than one applied before")
		return
	}
	s.fencing.applied[vmToken] = mark
}
