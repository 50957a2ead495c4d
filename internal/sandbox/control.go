package sandbox

import (
	"encoding/json"
	"net/http"
	"time"
)

// controlRoutes mounts the control API used by tests and scripts (SBX-11…20):
//
//	POST   /sandbox/faults  {"name":"token_invalid_jti","count":1,"client_id":""}  arm a fault
//	GET    /sandbox/faults                                                         list armed faults
//	DELETE /sandbox/faults                                                         clear all
//	POST   /sandbox/clock   {"offset_seconds":-360}                                 clock offset
//	GET    /sandbox/stats?name=token_requests                                      a counter
//
// The launch-minting endpoint (POST /sandbox/launch) belongs to the authorization server (auth*.go).
func (s *Server) controlRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name     string `json:"name"`
			Count    int    `json:"count"`
			ClientID string `json:"client_id"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || req.Name == "" {
			http.Error(w, `want {"name":…,"count":…}`, http.StatusBadRequest)
			return
		}
		if !knownFault(req.Name) {
			http.Error(w, "unknown fault "+req.Name, http.StatusBadRequest)
			return
		}
		if req.Count == 0 {
			req.Count = 1
		}
		s.Fault(req.Name, req.Count, req.ClientID)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"armed": s.ArmedFaults(), "known": FaultNames()})
	})
	mux.HandleFunc("DELETE /sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /sandbox/clock", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			OffsetSeconds int64 `json:"offset_seconds"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
			http.Error(w, `want {"offset_seconds":N}`, http.StatusBadRequest)
			return
		}
		s.SetClockOffset(time.Duration(req.OffsetSeconds) * time.Second)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /sandbox/stats", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		writeJSON(w, http.StatusOK, map[string]any{"name": name, "value": s.Count(name)})
	})
}

// writeJSON writes v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
