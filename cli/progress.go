package cli

import (
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/costor/costor/agent"
)

// showProgress: a live status line only for a person at a terminal.
func (e *env) showProgress() bool {
	return !e.c.Bool("quiet") && !e.c.Bool("json") && term.IsTerminal(int(os.Stderr.Fd()))
}

// startProgress redraws a status line on stderr four times a second and
// returns a function that clears it (safe to call more than once).
func startProgress(e *env, p *agent.Progress, verb string) func() {
	start := time.Now()
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(e.stderr, "\r\x1b[K")
				return
			case <-t.C:
				fmt.Fprint(e.stderr, "\r\x1b[K"+progressLine(p, verb, time.Since(start)))
			}
		}
	})
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}

func progressLine(p *agent.Progress, verb string, elapsed time.Duration) string {
	files, bytes := p.FilesDone.Load(), p.BytesDone.Load()
	rate := float64(bytes) / max(elapsed.Seconds(), 0.001)
	line := fmt.Sprintf("[%s] %s %d files, %s", fmtDuration(elapsed), verb, files, humanBytes(bytes))
	if total := p.BytesTotal.Load(); total > 0 {
		line += " / " + humanBytes(total)
		if p.ScanDone.Load() && rate > 0 && total > bytes {
			eta := time.Duration(float64(total-bytes) / rate * float64(time.Second))
			line += ", ETA " + fmtDuration(eta)
		}
	}
	line += fmt.Sprintf(", %s/s", humanBytes(uint64(rate)))
	if cur := p.Current(); cur != "" {
		if len(cur) > 50 {
			cur = "…" + cur[len(cur)-49:]
		}
		line += "  " + cur
	}
	return line
}

func fmtDuration(d time.Duration) string {
	s := int(d.Seconds())
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
