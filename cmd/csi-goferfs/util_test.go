package main

import "strings"

func splitLines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }

func fields(s string) []string { return strings.Fields(s) }
