module rapport.dev/services/care

go 1.26.8

replace rapport.dev/gen => ../../gen

replace rapport.dev/platform => ../../platform

require (
	github.com/golang-module/carbon/v2 v2.3.12
	github.com/teambition/rrule-go v1.8.2
	rapport.dev/platform v0.0.0
)
