package hypervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Config configures a Server.
type Config struct {
	// DataDir holds vms.json, rewritten atomically (temporary file, fsync,
	// rename) after every change and loaded at start, so that a restart
	// loses nothing. It is created if missing. Required.
	DataDir string
	// Latency is added to every VM API call (not to /healthz or /stats).
	Latency time.Duration
	// Transition is how long Provisioning, Starting and Stopping last
	// before the VM reaches its target state. The transitions run on
	// timers owned by the server and stopped by Close. Zero means "at
	// once, but still asynchronously".
	Transition time.Duration
	// ErrorRate is the fraction (0..1) of VM API calls that fail with 503
	// Injected before doing anything. /healthz and /stats are exempt.
	ErrorRate float64
	// Seed seeds the random numbers behind ErrorRate: with one seed, the
	// n-th call draws the same number every run.
	Seed int64
	// RefusedImages are image prefixes refused at create with 422
	// ImageRefused. Empty prefixes are ignored.
	RefusedImages []string
	// Logger receives one line per state change. Nil means logrus's
	// standard logger.
	Logger *logrus.Entry
}

// Server is the simulated hypervisor: VMs in memory, persisted in
// Config.DataDir, served over HTTP by Handler.
type Server struct {
	cfg     Config
	refused []string
	path    string
	log     *logrus.Entry
	handler http.Handler

	mu      sync.Mutex // guards everything below
	closed  bool
	vms     map[string]*entry
	byToken map[string]string // token → ID of its (first) VM
	nextID  int64
	creates int64
	deletes int64
	rng     *rand.Rand

	// fenceMu serialises mutating requests, so that a fencing token is
	// checked and the call it guards applied as one step: a stale call
	// cannot pass the check and then land after a newer one.
	fenceMu sync.Mutex
	fencing fencing // guarded by mu
}

// entry is a VM with the timer of its transition.
type entry struct {
	vm    VM
	ends  time.Time   // when the current transition is due to end; zero when steady
	timer *time.Timer // the current transition's timer, or nil
	gen   uint64      // bumped on every (re)scheduling, so a stale timer is ignored
}

// NewServer loads (or creates) cfg.DataDir and returns a Server whose
// persisted transitions have resumed. A corrupt vms.json is an error
// naming the file.
func NewServer(cfg Config) (*Server, error) {
	switch {
	case cfg.DataDir == "":
		return nil, errors.New("hypervisor: Config.DataDir is required")
	case cfg.Latency < 0:
		return nil, fmt.Errorf("hypervisor: negative Config.Latency %v", cfg.Latency)
	case cfg.Transition < 0:
		return nil, fmt.Errorf("hypervisor: negative Config.Transition %v", cfg.Transition)
	case math.IsNaN(cfg.ErrorRate) || cfg.ErrorRate < 0 || cfg.ErrorRate > 1:
		return nil, fmt.Errorf("hypervisor: Config.ErrorRate %v is not within [0, 1]", cfg.ErrorRate)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("hypervisor: creating data directory: %w", err)
	}
	if err := removeStaleTemps(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("hypervisor: removing stale temporary files: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		path:    filepath.Join(cfg.DataDir, stateFileName),
		log:     cfg.Logger,
		vms:     make(map[string]*entry),
		byToken: make(map[string]string),
		rng:     rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)),
	}
	if s.log == nil {
		s.log = logrus.NewEntry(logrus.StandardLogger())
	}
	for _, p := range cfg.RefusedImages {
		if p != "" {
			s.refused = append(s.refused, p)
		}
	}
	sf, err := readStateFile(s.path)
	if err != nil {
		return nil, err
	}
	s.nextID, s.creates, s.deletes = sf.NextID, sf.Creates, sf.Deletes

	s.mu.Lock()
	defer s.mu.Unlock()
	sort.Slice(sf.VMs, func(i, j int) bool { return sf.VMs[i].ID < sf.VMs[j].ID })
	now := time.Now()
	for _, r := range sf.VMs {
		e := &entry{vm: r.VM}
		s.vms[r.ID] = e
		if _, ok := s.byToken[r.Token]; !ok {
			s.byToken[r.Token] = r.ID
		}
		s.nextID = max(s.nextID, idNumber(r.ID))
		if r.State.transitional() {
			// Resume: the time left, at most one Transition of this
			// configuration (a restart may shorten it).
			left := min(max(r.TransitionEndsAt.Sub(now), 0), cfg.Transition)
			if r.TransitionEndsAt.IsZero() {
				left = cfg.Transition
			}
			s.scheduleLocked(e, left)
			s.log.WithFields(logrus.Fields{"id": r.ID, "token": r.Token, "state": r.State, "left": left}).
				Info("resuming transition")
		}
	}
	s.log.WithFields(logrus.Fields{"file": s.path, "vms": len(s.vms)}).Info("loaded")

	mux := http.NewServeMux()
	s.fencing.highest = map[string]fenceMark{}
	mux.HandleFunc("POST /vms", s.api(s.handleCreate))
	mux.HandleFunc("GET /vms", s.api(s.handleList))
	mux.HandleFunc("GET /vms/{id}", s.api(s.handleGet))
	mux.HandleFunc("POST /vms/{id}/power", s.api(s.handlePower))
	mux.HandleFunc("DELETE /vms/{id}", s.api(s.handleDelete))
	mux.HandleFunc("GET /images/check", s.api(s.handleCheckImage))
	mux.HandleFunc("GET /stats", s.handleStats)
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, newError(http.StatusNotFound, CodeNoRoute, "no route for %s %s", r.Method, r.URL.Path))
	})
	s.handler = mux
	return s, nil
}

// Handler returns the HTTP API (see the package documentation).
func (s *Server) Handler() http.Handler { return s.handler }

// Close stops the transitions; the API fails with 503 Unavailable from
// then on. Nothing is written to DataDir once Close has returned, so a new
// Server may take the directory over. Close is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for _, e := range s.vms {
		if e.timer != nil {
			e.timer.Stop()
			e.timer = nil
		}
	}
	s.log.Info("closed")
	return nil
}

var errClosed = newError(http.StatusServiceUnavailable, CodeUnavailable, "the hypervisor is closed")

// api wraps a VM API handler with the closed check, Latency and ErrorRate.
func (s *Server) api(h func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.isClosed() {
			writeError(w, errClosed)
			return
		}
		if s.cfg.Latency > 0 {
			t := time.NewTimer(s.cfg.Latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return // the client is gone: nobody reads an answer
			}
		}
		if s.inject() {
			s.log.WithFields(logrus.Fields{"method": r.Method, "path": r.URL.Path}).Debug("injected failure")
			writeError(w, newError(http.StatusServiceUnavailable, CodeInjected,
				"failure injected by the error rate (%v)", s.cfg.ErrorRate))
			return
		}
		h(w, r)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// inject draws whether this call fails.
func (s *Server) inject() bool {
	if s.cfg.ErrorRate <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < s.cfg.ErrorRate
}

// ---- operations: each takes the lock, changes memory, persists, and
// undoes the memory change if persisting failed. ----

func (s *Server) create(req CreateRequest) (vm VM, created bool, apiErr *Error) {
	if req.Power == "" {
		req.Power = PowerOn
	}
	switch {
	case strings.TrimSpace(req.Token) == "":
		return VM{}, false, badRequest("token is required")
	case strings.TrimSpace(req.Image) == "":
		return VM{}, false, badRequest("image is required")
	case req.CPU < 1:
		return VM{}, false, badRequest("cpu must be at least 1, got %d", req.CPU)
	case req.MemoryMiB < 1:
		return VM{}, false, badRequest("memoryMiB must be at least 1, got %d", req.MemoryMiB)
	case !req.Power.valid():
		return VM{}, false, badRequest("power must be %q or %q, got %q", PowerOn, PowerOff, req.Power)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return VM{}, false, errClosed
	}
	if id, ok := s.byToken[req.Token]; ok {
		return s.vms[id].vm, false, nil // idempotent: the VM made for this token
	}
	for _, p := range s.refused {
		if strings.HasPrefix(req.Image, p) {
			return VM{}, false, newError(http.StatusUnprocessableEntity, CodeImageRefused,
				"image %q is refused (prefix %q)", req.Image, p)
		}
	}
	s.nextID++
	e := &entry{vm: VM{
		ID:        formatID(s.nextID),
		Token:     req.Token,
		Name:      req.Name,
		CPU:       req.CPU,
		MemoryMiB: req.MemoryMiB,
		Image:     req.Image,
		Power:     req.Power,
		State:     StateProvisioning,
		CreatedAt: time.Now().UTC().Round(0),
	}}
	e.ends = time.Now().Add(s.cfg.Transition)
	s.vms[e.vm.ID] = e
	s.byToken[req.Token] = e.vm.ID
	s.creates++
	if err := s.saveLocked(); err != nil {
		delete(s.vms, e.vm.ID)
		delete(s.byToken, req.Token)
		s.creates--
		s.nextID--
		return VM{}, false, s.persistError(err)
	}
	s.scheduleLocked(e, s.cfg.Transition)
	s.log.WithFields(logrus.Fields{"id": e.vm.ID, "token": e.vm.Token, "name": e.vm.Name,
		"image": e.vm.Image, "power": e.vm.Power, "state": e.vm.State}).Info("created")
	return e.vm, true, nil
}

func (s *Server) get(id string) (VM, *Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return VM{}, errClosed
	}
	e, ok := s.vms[id]
	if !ok {
		return VM{}, notFound("vm %q not found", id)
	}
	return e.vm, nil
}

// list returns the VMs sorted by ID, only those of token if it is not "".
func (s *Server) list(token string, filter bool) ([]VM, *Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	out := make([]VM, 0, len(s.vms))
	for _, e := range s.vms {
		if !filter || e.vm.Token == token {
			out = append(out, e.vm)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// setPower asks for power p. Setting the power a VM has or is moving to
// changes nothing. During Provisioning only the target changes. A request
// against a transition in progress (Off while Starting, On while Stopping)
// turns it around, and the new transition takes a full Transition.
func (s *Server) setPower(id string, p Power) (VM, *Error) {
	if !p.valid() {
		return VM{}, badRequest("power must be %q or %q, got %q", PowerOn, PowerOff, p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return VM{}, errClosed
	}
	e, ok := s.vms[id]
	if !ok {
		return VM{}, notFound("vm %q not found", id)
	}
	if e.vm.Power == p {
		return e.vm, nil
	}
	old, oldEnds := e.vm, e.ends
	e.vm.Power = p
	restart := e.vm.State != StateProvisioning
	if restart {
		if p == PowerOn {
			e.vm.State = StateStarting
		} else {
			e.vm.State = StateStopping
		}
		e.ends = time.Now().Add(s.cfg.Transition)
	}
	if err := s.saveLocked(); err != nil {
		e.vm, e.ends = old, oldEnds
		return VM{}, s.persistError(err)
	}
	fields := logrus.Fields{"id": id, "token": e.vm.Token, "power": p}
	if restart {
		s.scheduleLocked(e, s.cfg.Transition)
		fields["from"], fields["to"] = old.State, e.vm.State
		s.log.WithFields(fields).Info("transitioned")
	} else {
		s.log.WithFields(fields).Info("power target changed while provisioning")
	}
	return e.vm, nil
}

func (s *Server) delete(id string) *Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	e, ok := s.vms[id]
	if !ok {
		return notFound("vm %q not found", id)
	}
	delete(s.vms, id)
	tokenOwner := s.byToken[e.vm.Token] == id
	if tokenOwner {
		delete(s.byToken, e.vm.Token)
		s.reindexTokenLocked(e.vm.Token)
	}
	s.deletes++
	if err := s.saveLocked(); err != nil {
		s.vms[id] = e
		if tokenOwner {
			s.byToken[e.vm.Token] = id
		}
		s.deletes--
		return s.persistError(err)
	}
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	e.gen++
	s.log.WithFields(logrus.Fields{"id": id, "token": e.vm.Token, "state": e.vm.State}).Info("deleted")
	return nil
}

// reindexTokenLocked points token at its lowest remaining VM, if any. Only
// a hand-edited vms.json can hold two VMs with one token.
func (s *Server) reindexTokenLocked(token string) {
	best := ""
	for id, e := range s.vms {
		if e.vm.Token == token && (best == "" || id < best) {
			best = id
		}
	}
	if best != "" {
		s.byToken[token] = best
	}
}

func (s *Server) stats() (Stats, *Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Stats{}, errClosed
	}
	tokens := make(map[string]bool, len(s.vms))
	for _, e := range s.vms {
		tokens[e.vm.Token] = true
	}
	return Stats{
		VMs:        len(s.vms),
		Tokens:     len(tokens),
		Duplicates: len(s.vms) - len(tokens),
		Creates:    s.creates,
		Deletes:    s.deletes,
		Fencing: FencingStats{
			Accepted:   s.fencing.accepted,
			Refused:    s.fencing.refused,
			Unfenced:   s.fencing.unfenced,
			OutOfOrder: s.fencing.outOfOrder,
		},
	}, nil
}

// scheduleLocked (re)starts e's transition to end after d.
func (s *Server) scheduleLocked(e *entry, d time.Duration) {
	if e.timer != nil {
		e.timer.Stop()
	}
	e.gen++
	gen, id := e.gen, e.vm.ID
	e.ends = time.Now().Add(d)
	e.timer = time.AfterFunc(d, func() { s.finish(id, gen) })
}

// finish ends the transition of VM id scheduled as gen, unless it has been
// rescheduled, deleted or the server closed since.
func (s *Server) finish(id string, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	e, ok := s.vms[id]
	if !ok || e.gen != gen || !e.vm.State.transitional() {
		return
	}
	from, oldEnds := e.vm.State, e.ends
	if e.vm.Power == PowerOn {
		e.vm.State = StateRunning
	} else {
		e.vm.State = StateStopped
	}
	e.ends = time.Time{}
	e.timer = nil
	if err := s.saveLocked(); err != nil {
		// Stay in the transition and try again later.
		e.vm.State, e.ends = from, oldEnds
		retry := max(s.cfg.Transition, 100*time.Millisecond)
		s.log.WithError(err).WithFields(logrus.Fields{"id": id, "retry": retry}).
			Error("persisting a transition failed")
		s.scheduleLocked(e, retry)
		return
	}
	s.log.WithFields(logrus.Fields{"id": id, "token": e.vm.Token, "from": from, "to": e.vm.State}).
		Info("transitioned")
}

// saveLocked writes the whole state to vms.json atomically.
func (s *Server) saveLocked() error {
	sf := stateFile{
		Version: stateFileVersion,
		NextID:  s.nextID,
		Creates: s.creates,
		Deletes: s.deletes,
		VMs:     make([]vmRecord, 0, len(s.vms)),
	}
	for _, e := range s.vms {
		r := vmRecord{VM: e.vm}
		if e.vm.State.transitional() {
			r.TransitionEndsAt = e.ends.UTC().Round(0)
		}
		sf.VMs = append(sf.VMs, r)
	}
	sort.Slice(sf.VMs, func(i, j int) bool { return sf.VMs[i].ID < sf.VMs[j].ID })
	data, err := json.MarshalIndent(&sf, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.path, append(data, '\n'))
}

func (s *Server) persistError(err error) *Error {
	s.log.WithError(err).WithField("file", s.path).Error("persisting the state failed")
	return newError(http.StatusInternalServerError, CodeInternal, "persisting the state failed: %v", err)
}

// ---- HTTP ----

// maxBody bounds request bodies.
const maxBody = 1 << 20

func decodeBody(w http.ResponseWriter, r *http.Request, v any) *Error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("invalid JSON body: data after the object")
	}
	return nil
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	var req CreateRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	s.fenceMu.Lock()
	defer s.fenceMu.Unlock()
	if err := s.checkFence(r, req.Token); err != nil {
		writeError(w, err)
		return
	}
	vm, created, err := s.create(req)
	if err != nil {
		writeError(w, err)
		return
	}
	s.noteApplied(r, req.Token)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, vm)
}

// handleCheckImage answers whether an image would be accepted: the
// catalogue check an admission webhook makes before a VM is stored.
func (s *Server) handleCheckImage(w http.ResponseWriter, r *http.Request) {
	image := r.URL.Query().Get("image")
	if image == "" {
		writeError(w, badRequest("the image query parameter is missing"))
		return
	}
	check := ImageCheck{Image: image, Allowed: true}
	s.mu.Lock()
	for _, p := range s.refused {
		if strings.HasPrefix(image, p) {
			check.Allowed, check.Reason = false, fmt.Sprintf("images beginning with %q are refused", p)
			break
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, check)
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	token, filter := r.URL.Query()["token"]
	t := ""
	if filter {
		t = token[0]
	}
	vms, err := s.list(t, filter)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, vms)
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	vm, err := s.get(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, vm)
}

func (s *Server) handlePower(w http.ResponseWriter, r *http.Request) {
	var req PowerRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	s.fenceMu.Lock()
	defer s.fenceMu.Unlock()
	vmToken := s.tokenOf(r.PathValue("id"))
	if err := s.checkFence(r, vmToken); err != nil {
		writeError(w, err)
		return
	}
	vm, err := s.setPower(r.PathValue("id"), req.Power)
	if err != nil {
		writeError(w, err)
		return
	}
	s.noteApplied(r, vmToken)
	writeJSON(w, http.StatusOK, vm)
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	s.fenceMu.Lock()
	defer s.fenceMu.Unlock()
	vmToken := s.tokenOf(r.PathValue("id"))
	if err := s.checkFence(r, vmToken); err != nil {
		writeError(w, err)
		return
	}
	if err := s.delete(r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	s.noteApplied(r, vmToken)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleStats(w http.ResponseWriter, _ *http.Request) {
	st, err := s.stats()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	if s.isClosed() {
		writeError(w, errClosed)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, e)
}
