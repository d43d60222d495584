package common

import (
	"fmt"
	"sync"
	"time"
)

// ChangeAnnotation is the annotation the driver's fresh scenario changes
// while a new leader runs its first pass; every change gives it a value of
// its own.
const ChangeAnnotation = "bench.rein.dev/change"

// Changes logs "change <name> <value> <time>" on the first handler call
// that sees each value of ChangeAnnotation on an object: when a change
// reached the handler. The line is the only thing it writes, and only for
// changed objects: a handler call on an object without the annotation
// costs one map lookup, so the measure does not slow the pass it is taken
// in.
type Changes struct {
	mu   sync.Mutex
	seen map[string]string // object name → the value last logged
}

// Saw records a handler call on the object called name with annotations;
// call it as the call starts, before its work.
func (c *Changes) Saw(name string, annotations map[string]string) {
	v, ok := annotations[ChangeAnnotation]
	if !ok {
		return
	}
	now := time.Now()
	c.mu.Lock()
	if c.seen == nil {
		c.seen = map[string]string{}
	}
	logged := c.seen[name] == v
	c.seen[name] = v
	c.mu.Unlock()
	if !logged {
		fmt.Printf("change %s %s %s\n", name, v, now.Format(time.RFC3339Nano))
	}
}
