package apply

// Marks is how many children s remembers applying.
func Marks(s *Set) int { return s.marks() }

// SetSweepFloor changes how many marks a set keeps before its first sweep
// and returns a function that restores it.
func SetSweepFloor(n int) (restore func()) {
	old := sweepFloor
	sweepFloor = n
	return func() { sweepFloor = old }
}
