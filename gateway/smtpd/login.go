package smtpd

import (
	"errors"

	"github.com/emersion/go-sasl"
)

// loginServer is the server side of the SASL LOGIN mechanism
// (draft-murchison-sasl-login-00).
//
// We carry our own because go-sasl ships a LOGIN client but no LOGIN server,
// and many SMTP clients (Outlook, older libraries, printers and appliances)
// speak only LOGIN. The exchange is:
//
//	C: AUTH LOGIN [base64(username)]
//	S: 334 VXNlcm5hbWU6              ("Username:", only without an initial response)
//	C: base64(username)
//	S: 334 UGFzc3dvcmQ6              ("Password:")
//	C: base64(password)
//
// go-smtp does the base64 and the "*" cancel; Next sees decoded bytes. An
// empty initial response ("AUTH LOGIN =") is treated as none: LOGIN has no
// use for an empty username, so the server asks for one.
type loginServer struct {
	authenticate func(username, password string) error
	state        loginState
	username     string
}

type loginState int

const (
	loginStart loginState = iota
	loginWantUser
	loginWantPass
	loginDone
)

// maxLoginField bounds the username and the password of one exchange.
const maxLoginField = 1024

// The LOGIN challenges, before go-smtp's base64.
const (
	loginUserChallenge = "Username:"
	loginPassChallenge = "Password:"
)

var errLoginTooLong = errors.New("sasl: LOGIN field too long")

// newLoginServer returns a sasl.Server for LOGIN that calls authenticate
// once with the username and password the client sent.
func newLoginServer(authenticate func(username, password string) error) sasl.Server {
	return &loginServer{authenticate: authenticate}
}

func (a *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	if len(response) > maxLoginField {
		a.state = loginDone
		return nil, false, errLoginTooLong
	}
	switch a.state {
	case loginStart:
		if len(response) == 0 {
			a.state = loginWantUser
			return []byte(loginUserChallenge), false, nil
		}
		a.username = string(response)
		a.state = loginWantPass
		return []byte(loginPassChallenge), false, nil
	case loginWantUser:
		a.username = string(response)
		a.state = loginWantPass
		return []byte(loginPassChallenge), false, nil
	case loginWantPass:
		a.state = loginDone
		return nil, true, a.authenticate(a.username, string(response))
	default:
		return nil, false, sasl.ErrUnexpectedClientResponse
	}
}
