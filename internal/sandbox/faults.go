package sandbox

import (
	"sort"
	"sync"
)

// Fault names follow smart-launcher-v2 (`auth_error`) and bulk-data-server (`sim.err`) where those
// exist. The authoritative list of names the sandbox honours is in FaultNames (faults_list.go).

type faultSet struct {
	mu sync.Mutex
	m  map[faultKey]int // remaining count; <0 = until cleared
}

type faultKey struct{ name, clientID string }

// Fault arms a fault for the next n matching requests (n < 0: until ClearFaults). clientID "" matches
// every client.
func (s *Server) Fault(name string, n int, clientID string) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if s.faults.m == nil {
		s.faults.m = map[faultKey]int{}
	}
	if n == 0 {
		delete(s.faults.m, faultKey{name, clientID})
		return
	}
	s.faults.m[faultKey{name, clientID}] = n
}

// ClearFaults disarms every fault.
func (s *Server) ClearFaults() {
	s.faults.mu.Lock()
	s.faults.m = nil
	s.faults.mu.Unlock()
}

// takeFault reports whether fault name is armed for clientID (or for every client) and consumes one use.
func (s *Server) takeFault(name, clientID string) bool {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	for _, k := range []faultKey{{name, clientID}, {name, ""}} {
		n, ok := s.faults.m[k]
		if !ok {
			continue
		}
		if n > 0 {
			if n == 1 {
				delete(s.faults.m, k)
			} else {
				s.faults.m[k] = n - 1
			}
		}
		return true
	}
	return false
}

// ArmedFaults lists the armed faults (for the control API).
func (s *Server) ArmedFaults() []string {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	var out []string
	for k := range s.faults.m {
		if k.clientID != "" {
			out = append(out, k.name+"@"+k.clientID)
		} else {
			out = append(out, k.name)
		}
	}
	sort.Strings(out)
	return out
}
