// Firebase Auth in the page: who is signed in, and their ID token for the API.

import { initializeApp } from "firebase/app";
import {
  type Auth,
  type User,
  browserLocalPersistence,
  connectAuthEmulator,
  createUserWithEmailAndPassword,
  indexedDBLocalPersistence,
  initializeAuth,
  onIdTokenChanged,
  sendPasswordResetEmail,
  signInWithEmailAndPassword,
  signOut as firebaseSignOut,
} from "firebase/auth";
import { createContext, useContext, useEffect, useState } from "react";
import type { Config } from "./config";

let auth: Auth | null = null;

export function startAuth(config: Config): Auth {
  const app = initializeApp(config.firebase);
  // initializeAuth without a popup/redirect resolver: e-mail sign-in needs none, and the
  // resolver is a large part of getAuth()'s code.
  auth = initializeAuth(app, { persistence: [indexedDBLocalPersistence, browserLocalPersistence] });
  if (config.authEmulator) connectAuthEmulator(auth, config.authEmulator, { disableWarnings: true });
  return auth;
}

function requireAuth(): Auth {
  if (!auth) throw new Error("Auth is used before startAuth()");
  return auth;
}

export interface Session {
  /** False until Firebase has said whether someone is signed in. */
  ready: boolean;
  user: User | null;
}

export const SessionContext = createContext<Session>({ ready: false, user: null });

export function useSession(): Session {
  return useContext(SessionContext);
}

export function useAuthState(): Session {
  const [state, setState] = useState<Session>({ ready: false, user: null });
  useEffect(() => onIdTokenChanged(requireAuth(), (user) => setState({ ready: true, user })), []);
  return state;
}

/** The signed-in user's ID token (refreshed by the SDK when it is about to expire). */
export async function idToken(forceRefresh = false): Promise<string | null> {
  const user = requireAuth().currentUser;
  return user ? user.getIdToken(forceRefresh) : null;
}

export async function signIn(email: string, password: string): Promise<void> {
  await signInWithEmailAndPassword(requireAuth(), email, password).catch(rethrowReadable);
}

export async function signUp(email: string, password: string): Promise<void> {
  await createUserWithEmailAndPassword(requireAuth(), email, password).catch(rethrowReadable);
}

export async function resetPassword(email: string): Promise<void> {
  await sendPasswordResetEmail(requireAuth(), email).catch(rethrowReadable);
}

export async function signOut(): Promise<void> {
  await firebaseSignOut(requireAuth());
}

// Firebase's error codes, in words a CSM can act on.
const MESSAGES: Record<string, string> = {
  "auth/invalid-credential": "That e-mail and password do not match an account.",
  "auth/wrong-password": "That e-mail and password do not match an account.",
  "auth/user-not-found": "That e-mail and password do not match an account.",
  "auth/invalid-email": "That is not a valid e-mail address.",
  "auth/missing-password": "Enter your password.",
  "auth/email-already-in-use": "An account with this e-mail already exists: sign in instead.",
  "auth/weak-password": "Choose a password of at least 6 characters.",
  "auth/too-many-requests": "Too many attempts. Wait a moment and try again.",
  "auth/user-disabled": "This account has been disabled.",
  "auth/network-request-failed": "The sign-in service cannot be reached. Check your connection.",
};

function rethrowReadable(error: unknown): never {
  const code = (error as { code?: string }).code ?? "";
  throw new Error(MESSAGES[code] ?? "Signing in failed. Try again.");
}
